/**
 * Entry point of every drover worker (forked by the primary with cluster.setupPrimary({ exec })):
 * reads the config the primary put in the environment and runs the worker (start-worker.ts) over
 * the process's IPC channel.
 */
import { ExitCode } from '../errors';
import { WORKER_CONFIG_ENV, type WorkerConfig } from '../protocol';
import { processChannel } from './channel';
import { startWorker } from './start-worker';

const config = JSON.parse(process.env[WORKER_CONFIG_ENV] ?? 'null') as WorkerConfig | null;
if (!config || !process.send) {
  process.stderr.write('drover: the worker entry is started by the drover primary, not directly.\n');
  process.exit(ExitCode.USAGE);
}
// drover's primary accepts every connection and hands it over (drover:socket). The server still
// listens, on a private loopback port (exclusive: not shared through the cluster), because node
// runs header/request timeouts and closeIdleConnections() only for listening servers.
void startWorker(config, config.app, processChannel({ port: 0, host: '127.0.0.1', exclusive: true }));
