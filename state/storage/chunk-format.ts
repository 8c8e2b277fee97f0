/**
 * The stored form of a chunk, the same in every storage: a 16-byte header, then the payload.
 *
 * | offset | size | field                                   |
 * | ------ | ---- | --------------------------------------- |
 * | 0      | 4    | magic `TMCK`                            |
 * | 4      | 1    | format version (1)                      |
 * | 5      | 3    | reserved, zero                          |
 * | 8      | 4    | payload length, unsigned big-endian     |
 * | 12     | 4    | CRC-32 of the payload, unsigned big-endian |
 *
 * NOTE: CRC-32 (zlib's polynomial) comes from `node:zlib` `crc32`, which Node has since 20.15;
 * the package requires Node >= 20.19.
 */
import { crc32 } from 'node:zlib';
import { CorruptChunkError } from './checkpoint-storage.js';

/** Bytes of the header in front of every stored chunk. */
export const CHUNK_HEADER_BYTES = 16;
const MAGIC = [0x54, 0x4d, 0x43, 0x4b]; // "TMCK"
const FORMAT_VERSION = 1;

/** Prepends the header (magic, version, length, CRC-32) to a chunk's payload. */
export function encodeChunk(payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(CHUNK_HEADER_BYTES + payload.byteLength);
  out.set(MAGIC, 0);
  out.writeUInt8(FORMAT_VERSION, 4);
  out.fill(0, 5, 8);
  out.writeUInt32BE(payload.byteLength, 8);
  out.writeUInt32BE(crc32(payload), 12);
  out.set(payload, CHUNK_HEADER_BYTES);
  return out;
}

/**
 * Checks a stored chunk and returns a view of its payload (no copy); throws
 * {@link CorruptChunkError} naming the job and chunk when anything does not match.
 */
export function decodeChunk(jobId: string, chunkId: string, stored: Uint8Array): Uint8Array {
  if (stored.byteLength < CHUNK_HEADER_BYTES)
    throw new CorruptChunkError(jobId, chunkId, `${stored.byteLength} bytes, shorter than the header`);
  for (let i = 0; i < MAGIC.length; i++)
    if (stored[i] !== MAGIC[i]) throw new CorruptChunkError(jobId, chunkId, 'bad magic number');
  const view = new DataView(stored.buffer, stored.byteOffset, stored.byteLength);
  const version = view.getUint8(4);
  if (version !== FORMAT_VERSION)
    throw new CorruptChunkError(jobId, chunkId, `unknown chunk format version ${version}`);
  if (view.getUint8(5) !== 0 || view.getUint16(6) !== 0)
    throw new CorruptChunkError(jobId, chunkId, 'reserved header bytes are not zero');
  const length = view.getUint32(8);
  if (length !== stored.byteLength - CHUNK_HEADER_BYTES)
    throw new CorruptChunkError(
      jobId,
      chunkId,
      `header says ${length} bytes, ${stored.byteLength - CHUNK_HEADER_BYTES} stored`,
    );
  const payload = stored.subarray(CHUNK_HEADER_BYTES);
  const expected = view.getUint32(12);
  const actual = crc32(payload);
  if (actual !== expected)
    throw new CorruptChunkError(
      jobId,
      chunkId,
      `CRC-32 mismatch (stored ${hex(expected)}, computed ${hex(actual)})`,
    );
  return new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength);
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}
