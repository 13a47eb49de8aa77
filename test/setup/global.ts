/** Builds dist/herd.cjs from the current sources once per run: integration tests run the real program. */
import { execFileSync } from 'node:child_process';

export default function setup(): void {
  execFileSync(process.execPath, ['build/bundle.mjs'], { stdio: 'inherit' });
}
