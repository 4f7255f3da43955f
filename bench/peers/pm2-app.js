// Peer for the benchmarks: the same demo app, as pm2 cluster mode runs it (pm2's daemon is the
// cluster primary and each instance calls listen() on the shared port).
const path = require('node:path');
const { createDemoApp } = require(path.join(__dirname, '..', '..', 'dist', 'src', 'demo', 'app.js'));

createDemoApp().listen(Number(process.env.PORT), '127.0.0.1');
