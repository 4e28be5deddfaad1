/** The crash sample's second half (see crash-sample.test.ts): failback, restore, drill and the guard. */
import { crashSample } from '../support/crash';

crashSample(['failback', 'restore', 'drill', 'guard']);
