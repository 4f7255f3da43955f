// Peer for the benchmarks: the minimal node:cluster primary that only forks, running the same
// demo app as drover. Prints one JSON line {"msg":"ready","port":N} once every worker listens.
const cluster = require('node:cluster');
const path = require('node:path');

const workers = Number(process.env.WORKERS ?? 2);
const port = Number(process.env.PORT ?? 0);
const keepAliveTimeoutMs = process.env.KEEP_ALIVE_TIMEOUT_MS ? Number(process.env.KEEP_ALIVE_TIMEOUT_MS) : undefined;

if (cluster.isPrimary) {
  let listening = 0;
  for (let i = 0; i < workers; i++) cluster.fork();
  cluster.on('listening', (_w, address) => {
    if (++listening === workers) console.log(JSON.stringify({ msg: 'ready', port: address.port }));
  });
  const stop = () => {
    for (const w of Object.values(cluster.workers)) w.process.kill('SIGKILL');
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  const { createDemoApp } = require(path.join(__dirname, '..', '..', 'dist', 'src', 'demo', 'app.js'));
  const server = createDemoApp().listen(port, '127.0.0.1');
  if (keepAliveTimeoutMs !== undefined) server.keepAliveTimeout = keepAliveTimeoutMs;
}
