import { Router } from 'express';

/** S1 routes (/upstream, /report): being written; mounted by the demo app. */
export function createIoRouter(): Router {
  return Router();
}
