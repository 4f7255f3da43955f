import type { Suite } from '../lib/suite';
import { costSuite } from './cost';
import { crudSuite } from './crud';
import { ioSuite } from './io';
import { metricsSuite } from './metrics';
import { overheadSuite } from './overhead';
import { peersSuite } from './peers';
import { probeSuite } from './probe';
import { proxySuite } from './proxy';
import { workersSuite } from './workers';

/** Every suite, in report order. */
export const SUITES: Suite[] = [workersSuite, proxySuite, probeSuite, ioSuite, crudSuite, peersSuite, overheadSuite, metricsSuite, costSuite];
export const SUITES_NAMES = SUITES.map((s) => s.name);
