/**
 * Control-plane security: where it binds, who may reload, who may scrape.
 */
import { randomBytes } from 'node:crypto';
import * as net from 'node:net';
import * as os from 'node:os';
import { total } from '../../helpers/prom';
import { Fleet, RELIABILITY_APP, getText, linesSince, scrape, reliabilityCase, CaseBuilder } from '../../helpers/reliability';
import { listeners } from '../../helpers/proc';
import type { CaseResult, ScenarioOptions } from '../../../bench/reliability/cases';

const APP = { app: RELIABILITY_APP };

function connectable(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.setTimeout(2000, () => {
      s.destroy();
      resolve('timeout');
    });
    s.on('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
  });
}

export async function controlBind(_o: ScenarioOptions): Promise<CaseResult> {
  const c = new CaseBuilder('control-bind');
  const fleet = new Fleet();
  try {
    const d = await fleet.start({ ...APP, args: ['--workers', '1'] });
    const bound = listeners(d.pid).filter((l) => l.port === d.controlPort);
    c.check('default: the control port is bound to 127.0.0.1 only (/proc/<primary>/net/tcp)', bound.length === 1 && bound[0]!.address === '127.0.0.1', bound.map((b) => b.address).join(', '), '127.0.0.1');
    const external = Object.values(os.networkInterfaces()).flat().find((i) => i && i.family === 'IPv4' && !i.internal);
    if (external) {
      const r = await connectable(external.address, d.controlPort);
      c.check(`default: not reachable on ${external.address} (a non-loopback address of this machine)`, r === 'ECONNREFUSED', r, 'ECONNREFUSED');
    } else {
      c.note('This machine has no non-loopback IPv4 address, so reachability from another interface was not tried.');
    }
    const wide = await fleet.start({ ...APP, args: ['--workers', '1', '--control-host', '0.0.0.0'] });
    const wideBound = listeners(wide.pid).filter((l) => l.port === wide.controlPort);
    c.check('--control-host 0.0.0.0: bound to every address, because the operator said so', wideBound.length === 1 && wideBound[0]!.address === '0.0.0.0', wideBound.map((b) => b.address).join(', '), '0.0.0.0');
    c.note(`Read from the LISTEN rows of /proc/<primary pid>/net/tcp matched to the primary's socket inodes: default ${bound.map((b) => `${b.address}:${b.port}`).join(', ')}, with --control-host 0.0.0.0 ${wideBound.map((b) => `${b.address}:${b.port}`).join(', ')}.`);
    return c.done({ load: null, faults: '2 starts (default, --control-host 0.0.0.0)', failed: null, bound: null, recoveryMs: null, details: { bound, wideBound, external: external?.address ?? null } });
  } finally {
    await fleet.stopAll();
  }
}

export async function controlToken(_o: ScenarioOptions): Promise<CaseResult> {
  const c = new CaseBuilder('control-token');
  const fleet = new Fleet();
  const token = randomBytes(16).toString('hex');
  try {
    const d = await fleet.start({ ...APP, args: ['--workers', '1', '--control-token', token] });
    const reload = (headers: Record<string, string>, query = '', method = 'POST') => getText(d.controlUrl(`/reload${query}`), headers, method);
    const refused: [string, Record<string, string>, string?][] = [
      ['no Authorization header', {}],
      ['a wrong token', { authorization: 'Bearer nope' }],
      ['the token minus its last character', { authorization: `Bearer ${token.slice(0, -1)}` }],
      ['the token plus one character', { authorization: `Bearer ${token}x` }],
      ['the token as Basic credentials', { authorization: `Basic ${Buffer.from(`drover:${token}`).toString('base64')}` }],
      ['the token in the query string', {}, `?token=${token}`],
    ];
    const tried: string[] = [];
    for (const [what, headers, query] of refused) {
      const r = await reload(headers, query);
      tried.push(`${what}: ${r.status}`);
      c.check(`POST /reload with ${what} → 401`, r.status === 401, r.status, 401);
    }
    const get = await reload({ authorization: `Bearer ${token}` }, '', 'GET');
    c.check('GET /reload (not a route) → 404', get.status === 404, get.status, 404);
    const mark = d.lines.length;
    const ok = await reload({ authorization: `Bearer ${token}` });
    const again = await reload({ authorization: `Bearer ${token}` });
    c.check('POST /reload with the token → 202', ok.status === 202, ok.status, 202);
    c.check('a second one while the first runs → 409', again.status === 409, again.status, 409);
    await d.waitForMsg('rolling reload complete', 20_000, mark);
    const s = await scrape(d);
    c.check('drover_control_unauthorized_total counts each refusal', total(s, 'drover_control_unauthorized_total') === refused.length, total(s, 'drover_control_unauthorized_total'), refused.length);
    c.check('each refusal is logged', linesSince(d, 0, 'control request with a wrong or missing token').length === refused.length, linesSince(d, 0, 'control request with a wrong or missing token').length, refused.length);

    const open = await fleet.start({ ...APP, args: ['--workers', '1'] });
    const none = await getText(open.controlUrl('/reload'), {}, 'POST');
    const withSome = await getText(open.controlUrl('/reload'), { authorization: 'Bearer guess' }, 'POST');
    c.check('no token configured: POST /reload → 403 (disabled)', none.status === 403, none.status, 403);
    c.check('…even with some bearer token → 403', withSome.status === 403, withSome.status, 403);
    const s2 = await scrape(open);
    c.check('…and the generation did not change', total(s2, 'drover_generation') === 1, total(s2, 'drover_generation'), 1);
    c.note(`Refused with 401: ${tried.join('; ')}. The comparison is constant-time (crypto.timingSafeEqual).`);
    return c.done({ load: null, faults: `${refused.length + 3} unauthorized reload attempts`, failed: null, bound: null, recoveryMs: null, inputs: refused.length + 3, details: { tried } });
  } finally {
    await fleet.stopAll();
  }
}

export async function metricsAuth(_o: ScenarioOptions): Promise<CaseResult> {
  const c = new CaseBuilder('metrics-auth');
  const fleet = new Fleet();
  const token = randomBytes(16).toString('hex');
  try {
    const d = await fleet.start({ ...APP, args: ['--workers', '1', '--control-token', token, '--metrics-auth', 'on'] });
    const none = await getText(d.controlUrl('/metrics'));
    const wrong = await getText(d.controlUrl('/metrics'), { authorization: 'Bearer nope' });
    const right = await getText(d.controlUrl('/metrics'), { authorization: `Bearer ${token}` });
    c.check('--metrics-auth on: GET /metrics without a token → 401', none.status === 401, none.status, 401);
    c.check('…with a wrong token → 401', wrong.status === 401, wrong.status, 401);
    c.check('…with the token → 200 and the exposition', right.status === 200 && right.body.includes('drover_build_info'), right.status, 200);
    for (const probe of ['/livez', '/readyz']) {
      const r = await getText(d.controlUrl(probe));
      c.check(`…${probe} stays open → 200`, r.status === 200, r.status, 200);
    }
    const counted = total(await scrape(d, { authorization: `Bearer ${token}` }), 'drover_control_unauthorized_total');
    c.check('…the two refused scrapes are counted', counted === 2, counted, 2);
    const statusOpen = await getText(d.controlUrl('/status'));
    const dflt = await fleet.start({ ...APP, args: ['--workers', '1'] });
    const openScrape = await getText(dflt.controlUrl('/metrics'));
    c.check('default (--metrics-auth off): GET /metrics is open → 200', openScrape.status === 200, openScrape.status, 200);
    c.note(
      `With --metrics-auth on, /status still answers ${statusOpen.status} without a token: it is not a probe, and shows pids, the app path and per-worker memory. ` +
        'The README promises only that probes stay open; whether /status should follow --metrics-auth is a decision to make (observation, not asserted).',
    );
    return c.done({ load: null, faults: '2 unauthorized scrapes', failed: null, bound: null, recoveryMs: null, inputs: 2, details: { statusWithoutToken: statusOpen.status } });
  } finally {
    await fleet.stopAll();
  }
}

reliabilityCase('control-bind', controlBind);
reliabilityCase('control-token', controlToken);
reliabilityCase('metrics-auth', metricsAuth);
