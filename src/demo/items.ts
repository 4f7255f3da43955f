import { Router } from 'express';

/** S2 routes (/items CRUD): being written; mounted by the demo app. */
export function createItemsRouter(): Router {
  return Router();
}
