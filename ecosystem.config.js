// pm2 configuration for drover. Start with `pm2 start ecosystem.config.js`.
//
// drover does its own clustering, so pm2 runs it in *fork* mode with one instance: in pm2's
// cluster mode the pm2 daemon would be the cluster primary and drover's supervisor would never
// run. Zero-downtime reload under pm2 is `pm2 sendSignal SIGHUP drover` (`pm2 reload` in fork mode
// is a stop/start with downtime).
//
// Each number below is tied to a drover default; change them together.
const DRAIN_TIMEOUT_S = 30; // drover --drain-timeout default
const BOOT_TIMEOUT_S = 30; // drover --boot-timeout default
const SHUTDOWN_DELAY_S = 0; // drover --shutdown-delay default

module.exports = {
  apps: [
    {
      name: 'drover',
      script: './bin/drover.js',
      // Your app: 'start ./path/to/app.js'. Without a path, the bundled demo app runs.
      args: 'start',
      exec_mode: 'fork',
      instances: 1,
      // drover sends process.send('ready') once every worker listens.
      wait_ready: true,
      listen_timeout: (BOOT_TIMEOUT_S + 10) * 1000,
      // pm2 sends SIGINT, then SIGKILL after kill_timeout: leave room for the whole drain.
      kill_timeout: (SHUTDOWN_DELAY_S + DRAIN_TIMEOUT_S + 10) * 1000,
      // Usage error, app load error, crash loop: restarting cannot help, so pm2 must not loop.
      stop_exit_codes: [2, 3, 4],
      // Exponential backoff for the restarts that can help (e.g. exit 6, primary error).
      exp_backoff_restart_delay: 200,
      // pm2's max_memory_restart would only see the primary's memory; drover watches its workers.
      env: {
        NODE_ENV: 'production',
      },
    },
  ],
};
