// Copies non-TypeScript runtime assets (Redis Lua scripts) next to the emitted JavaScript in dist/.
import { cpSync, existsSync } from 'node:fs';

const from = new URL('../state/storage/scripts/', import.meta.url);
const to = new URL('../dist/state/storage/scripts/', import.meta.url);
if (existsSync(from)) cpSync(from, to, { recursive: true });
