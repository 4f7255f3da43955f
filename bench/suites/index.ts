import type { Suite } from '../lib/suite';
import { metricsSuite } from './metrics';

/** Every suite, in report order. */
export const SUITES: Suite[] = [metricsSuite];
export const SUITES_NAMES = SUITES.map((s) => s.name);
