import * as fs from 'node:fs';

/** TCP sockets the process listens on, with their bound address (IPv4 and IPv6 tables). */
export function listeners(pid: number): { address: string; port: number }[] {
  const inodes = new Set<string>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      /* closed meanwhile */
    }
  }
  const out: { address: string; port: number }[] = [];
  for (const table of ['tcp', 'tcp6']) {
    let text = '';
    try {
      text = fs.readFileSync(`/proc/${pid}/net/${table}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10 || cols[3] !== '0A' || !inodes.has(cols[9]!)) continue;
      const [hexAddr, hexPort] = cols[1]!.split(':') as [string, string];
      out.push({ address: decodeAddress(hexAddr), port: parseInt(hexPort, 16) });
    }
  }
  return out;
}

/** /proc/net/tcp addresses are the kernel's 32-bit words printed in host (little-endian) order. */
function decodeAddress(hex: string): string {
  if (hex.length === 8) return [6, 4, 2, 0].map((i) => parseInt(hex.slice(i, i + 2), 16)).join('.');
  const words = hex.match(/.{8}/g)!.map((w) => w.match(/../g)!.reverse().join(''));
  const groups = words.join('').match(/.{4}/g)!.map((g) => g.replace(/^0+(?=.)/, ''));
  return groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
}

/** TCP ports a process is listening on (any address). */
export function listeningPorts(pid: number): number[] {
  return listeners(pid).map((l) => l.port).sort((a, b) => a - b);
}
