/** The crash sample's second half (see crash-sample.test.ts): failback, restore and drill. */
import { crashSample } from '../support/crash';

crashSample(['failback', 'restore', 'drill']);
