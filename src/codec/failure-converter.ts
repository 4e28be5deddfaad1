/**
 * The failure converter of an encrypting worker and its clients: a failure's message and stack
 * trace travel inside an encoded payload (they can name a host, a path or a prompt), so the
 * codec encrypts them like any payload. Loaded by path (failureConverterPath): the workflow
 * sandbox uses it too, so it is plain SDK code.
 */
import { DefaultFailureConverter } from '@temporalio/common';

export const failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
