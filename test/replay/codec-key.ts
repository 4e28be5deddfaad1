/**
 * The payload codec key the encrypted histories were recorded with (scripts/record-histories.ts,
 * scenario `encrypted`) and the replay tests decrypt them with. A test key, in the repository on
 * purpose; it protects nothing but these fixtures.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AesGcmCodec, parseCodecKey } from '../../src/codec/aes-gcm';

export const TEST_CODEC_KEY = { id: 'replay-test-1', file: join(__dirname, 'fixtures', 'codec-test.key') };

export function testCodec(): AesGcmCodec {
  return new AesGcmCodec([parseCodecKey(TEST_CODEC_KEY.id, readFileSync(TEST_CODEC_KEY.file, 'utf8'))]);
}
