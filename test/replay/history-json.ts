/**
 * History <-> JSON in the format the Temporal CLI (`temporal workflow show --output json`) and UI
 * export: the SDK's historyToJSON/historyFromJSON (@temporalio/common/lib/proto-utils) when they
 * work, else the same conversion done with the protobufjs copy that @temporalio/proto is built on.
 *
 * Why the fallback: in this install npm did not dedupe protobufjs 8 (the top level holds 7.x for
 * @grpc/proto-loader), so @temporalio/common and @temporalio/proto each have their own copy, and
 * protojson's `type instanceof Type` check in common's copy rejects proto's types ("TypeError:
 * type must be a Type"). The worker's own JSON path (runReplayHistory with a JSON history) goes
 * through the same broken function, so the replay test hands the worker decoded histories.
 */
import { dirname } from 'node:path';
import * as proto from '@temporalio/proto';
import { historyFromJSON as sdkFromJSON, historyToJSON as sdkToJSON, type History } from '@temporalio/common/lib/proto-utils';
import { patchProtobufRoot } from '@temporalio/proto/lib/patch-protobuf-root';

export type { History } from '@temporalio/common/lib/proto-utils';

interface ProtoJson {
  toJson(type: unknown, message: unknown, options?: object): unknown;
  fromJson(type: unknown, json: unknown, options?: object): unknown;
}
interface LookupRoot {
  lookupType(name: string): unknown;
}

let fallback: { protojson: ProtoJson; historyType: unknown } | undefined;
function protoJson(): { protojson: ProtoJson; historyType: unknown } {
  if (!fallback) {
    const protoDir = dirname(require.resolve('@temporalio/proto/package.json'));
    const protojson = require(require.resolve('protobufjs/ext/protojson', { paths: [protoDir] })) as ProtoJson;
    const root = patchProtobufRoot(proto) as unknown as LookupRoot;
    fallback = { protojson, historyType: root.lookupType('temporal.api.history.v1.History') };
  }
  return fallback;
}

const isTypeMismatch = (err: unknown) => err instanceof TypeError && /must be a Type/.test(err.message);

/** Pretty JSON of a history (as fetchHistory returns it). */
export function historyToJSON(history: History): string {
  try {
    return sdkToJSON(history);
  } catch (err) {
    if (!isTypeMismatch(err)) throw err;
    const { protojson, historyType } = protoJson();
    return JSON.stringify(protojson.toJson(historyType, proto.temporal.api.history.v1.History.fromObject(history)), null, 2);
  }
}

/** A History object from its JSON (CLI format, or the UI's with short enum names). */
export function historyFromJSON(json: unknown): History {
  try {
    return sdkFromJSON(json);
  } catch (err) {
    if (!isTypeMismatch(err)) throw err;
    const { protojson, historyType } = protoJson();
    const loaded = protojson.fromJson(historyType, fixHistory(json), { ignoreUnknownFields: true });
    if (!loaded) throw new TypeError('invalid history');
    return loaded as History;
  }
}

// The SDK's normalisation of the UI's export (EventType "WorkflowExecutionStarted" → EVENT_TYPE_…).
type Obj = Record<string, unknown>;
const constantCase = (s: string) => s.replace(/[^\b][A-Z]/g, (m) => `${m[0]}_${m[1]}`).toUpperCase();
function fixEnum(o: Obj, attr: string, prefix: string): Obj {
  const v = o[attr];
  return typeof v === 'string' ? { [attr]: v.startsWith(prefix) ? v : `${prefix}_${constantCase(v)}` } : {};
}
function fixHistory(history: unknown): Obj {
  if (typeof history !== 'object' || history === null || !Array.isArray((history as Obj).events))
    throw new TypeError('invalid history: expected an object with an array of events');
  return {
    events: ((history as Obj).events as Obj[]).map((e) => {
      const key = Object.keys(e).find((k) => k.endsWith('EventAttributes'));
      if (!key) throw new TypeError(`history event without attributes: ${JSON.stringify(e).slice(0, 200)}`);
      const a = e[key] as Obj;
      const tq = a.taskQueue as Obj | undefined;
      const child = a.childWorkflowExecutionFailureInfo as Obj | undefined;
      return {
        ...e,
        ...fixEnum(e, 'eventType', 'EVENT_TYPE'),
        [key]: {
          ...a,
          ...(tq ? { taskQueue: { ...tq, ...fixEnum(tq, 'kind', 'TASK_QUEUE_KIND') } } : {}),
          ...fixEnum(a, 'parentClosePolicy', 'PARENT_CLOSE_POLICY'),
          ...fixEnum(a, 'workflowIdReusePolicy', 'WORKFLOW_ID_REUSE_POLICY'),
          ...fixEnum(a, 'initiator', 'CONTINUE_AS_NEW_INITIATOR'),
          ...fixEnum(a, 'retryState', 'RETRY_STATE'),
          ...(child ? { childWorkflowExecutionFailureInfo: { ...child, ...fixEnum(child, 'retryState', 'RETRY_STATE') } } : {}),
        },
      };
    }),
  };
}
