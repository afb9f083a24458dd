import { runCli } from './cli/chronicle.js';

/** `node dist/main.js` is `chronicle serve`. */
process.exitCode = await runCli(['serve']);
