/**
 * What payload encryption costs a worker: the SDK's JSON conversion of real switchyard payloads
 * alone, against the same conversion followed by the AES-256-GCM codec's encode and decode
 * (src/codec/aes-gcm.ts), interleaved in one run. Payloads: a small activity input (~100 B) and
 * a failover result with its step log (~40 KB, the largest a run writes). Prints per-payload
 * medians and the ratio; no sandbox, no server.
 *
 *   node --import tsx bench/codec.ts
 */
import { defaultPayloadConverter } from '@temporalio/common';
import { AesGcmCodec, generateCodecKey, parseCodecKey } from '../src/codec/aes-gcm';

const codec = new AesGcmCodec([parseCodecKey('bench', generateCodecKey())]);

const small = { cluster: 'demo', node: 'dc2-db', backupId: 'backup-demo-2026-12-04T01-00-00-000Z-1a2b3c4d' };
const steps = Array.from({ length: 120 }, (_, i) => ({
  name: `step-${i}:dc2-db`,
  state: 'done',
  startedAt: '2026-12-04T01:00:00.000Z',
  endedAt: '2026-12-04T01:00:00.250Z',
  attempts: 1,
  detail: `dc2-db (127.0.2.1:5432) did what step ${i} asks: replayed up to 0/3026380, primary at 0/3026380, lag 0 bytes; `.repeat(3),
}));
const large = { cluster: 'demo', outcome: 'completed', rto: { fromDecisionSeconds: 1.2, fromStartSeconds: 3.4 }, steps };

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function timeIt(rounds: number, fn: () => Promise<void>): Promise<number> {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < rounds; i++) await fn();
  return Number(process.hrtime.bigint() - t0) / 1e3 / rounds; // µs per round
}

async function main(): Promise<void> {
  for (const [label, value, rounds] of [
    ['small activity input', small, 2000],
    ['failover result with its step log', large, 200],
  ] as const) {
    const bytes = defaultPayloadConverter.toPayload(value)!.data!.length;
    const plain: number[] = [];
    const encrypted: number[] = [];
    for (let r = 0; r < 15; r++) {
      plain.push(
        await timeIt(rounds, async () => {
          defaultPayloadConverter.fromPayload(defaultPayloadConverter.toPayload(value)!);
        }),
      );
      encrypted.push(
        await timeIt(rounds, async () => {
          const [enc] = await codec.encode([defaultPayloadConverter.toPayload(value)!]);
          defaultPayloadConverter.fromPayload((await codec.decode([enc]))[0]);
        }),
      );
    }
    const p = median(plain);
    const e = median(encrypted);
    process.stdout.write(
      `${label} (${bytes} B): JSON only ${p.toFixed(1)} µs, JSON + AES-256-GCM encode and decode ${e.toFixed(1)} µs ` +
        `(ratio ${(e / p).toFixed(2)}, +${(e - p).toFixed(1)} µs per payload written and read)\n`,
    );
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/codec: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
