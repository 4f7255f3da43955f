/**
 * Exit codes are a contract with whoever runs drover (a shell, pm2, Kubernetes).
 * A supervisor of drover must be able to tell "restart me" from "restarting will not help".
 */
export const ExitCode = {
  /** Clean stop: every worker drained, nothing left behind. */
  OK: 0,
  /** Unexpected failure that does not fit a more specific code. */
  FAILURE: 1,
  /** Bad command line or environment: a flag or value drover cannot use. Restarting will not help. */
  USAGE: 2,
  /** The app module could not be loaded (syntax error, throws at import, no app exported). Restarting will not help. */
  APP_LOAD_ERROR: 3,
  /** Workers kept dying before they could listen, despite backoff. */
  CRASH_LOOP: 4,
  /** The app port or control port could not be bound (in use, no permission). */
  LISTEN_ERROR: 5,
  /** The primary hit an unexpected exception; workers were drained before exiting. */
  PRIMARY_ERROR: 6,
  /** A second SIGINT/SIGTERM arrived during drain: workers were killed without finishing. */
  FORCED_STOP: 7,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export type DroverErrorCode =
  | 'DROVER_ERR_USAGE'
  | 'DROVER_ERR_OPTION'
  | 'DROVER_ERR_APP_LOAD'
  | 'DROVER_ERR_LISTEN';

/** An error with a stable code, meant to be shown to an operator as one clear sentence. */
export class DroverError extends Error {
  constructor(
    readonly code: DroverErrorCode,
    message: string,
    readonly exitCode: ExitCode = ExitCode.FAILURE,
  ) {
    super(message);
    this.name = 'DroverError';
  }
}

export function usageError(message: string): DroverError {
  return new DroverError('DROVER_ERR_USAGE', message, ExitCode.USAGE);
}
