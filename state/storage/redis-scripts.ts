/**
 * The Lua scripts of the Redis checkpoint storage, read from `state/storage/scripts/*.lua`
 * (BullMQ style: `<name>-<number of keys>.lua`, a header documenting KEYS and ARGV, shared code in
 * `scripts/includes/` pulled in by `--- @include "<name>"`). Each is registered on a client with
 * `defineCommand` under a versioned name; bump the version when a script changes meaning, so a
 * client never runs an old script that a server still has cached under the same name.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { TidemarkError } from '../errors.js';

/** A script ready for `defineCommand`. */
export interface StorageScript {
  /** The versioned command name, e.g. `tidemarkCommit:1`. */
  name: string;
  numberOfKeys: number;
  lua: string;
}

const SPECS = {
  commit: { name: 'tidemarkCommit:2', file: 'commit-9.lua' },
  resolveCommit: { name: 'tidemarkResolveCommit:1', file: 'resolve-commit-3.lua' },
  writeChunk: { name: 'tidemarkWriteChunk:1', file: 'write-chunk-1.lua' },
  deleteCheckpoint: { name: 'tidemarkDeleteCheckpoint:1', file: 'delete-checkpoint-4.lua' },
  acquireLease: { name: 'tidemarkAcquireLease:1', file: 'acquire-lease-2.lua' },
  renewLease: { name: 'tidemarkRenewLease:1', file: 'renew-lease-1.lua' },
  releaseLease: { name: 'tidemarkReleaseLease:1', file: 'release-lease-1.lua' },
  writeRun: { name: 'tidemarkWriteRun:1', file: 'write-run-2.lua' },
} as const;

/** The scripts by role. */
export type StorageScripts = { [K in keyof typeof SPECS]: StorageScript };

let cached: StorageScripts | undefined;

/**
 * Where the `.lua` files are: beside this module when run from source; from the build
 * (`dist/state/storage/`) the package's `state/storage/scripts/` is used.
 */
function scriptsDir(): string {
  const candidates = [
    new URL('./scripts/', import.meta.url),
    new URL('../../../state/storage/scripts/', import.meta.url),
  ];
  for (const url of candidates) {
    const dir = fileURLToPath(url);
    if (existsSync(dir)) return dir;
  }
  throw new TidemarkError(
    'INTERNAL_ERROR',
    `the Lua scripts of the Redis checkpoint storage were not found (looked in ${candidates.map((u) => fileURLToPath(u)).join(', ')})`,
  );
}

function readScript(dir: string, file: string, depth = 0): string {
  const text = readFileSync(`${dir}${file}`, 'utf8');
  return text.replace(/^--- @include "([\w-]+)"$/gm, (_line, name: string) => {
    if (depth > 4) throw new TidemarkError('INTERNAL_ERROR', `Lua include nesting too deep at ${file}`);
    return readScript(dir, `includes/${name}.lua`, depth + 1);
  });
}

/** Loads (once) every script of the Redis checkpoint storage. */
export function storageScripts(): StorageScripts {
  if (cached !== undefined) return cached;
  const dir = scriptsDir();
  const out: Partial<Record<keyof typeof SPECS, StorageScript>> = {};
  for (const [role, spec] of Object.entries(SPECS) as [
    keyof typeof SPECS,
    (typeof SPECS)[keyof typeof SPECS],
  ][]) {
    const numberOfKeys = Number(/-(\d+)\.lua$/.exec(spec.file)?.[1]);
    out[role] = { name: spec.name, numberOfKeys, lua: readScript(dir, spec.file) };
  }
  cached = out as StorageScripts;
  return cached;
}
