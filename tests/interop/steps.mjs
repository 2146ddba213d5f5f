// The step runner every interop script shares: each check is a named step, the first failure
// ends the script, and the last line is the summary `N passed, M failed` that the Rust side
// (crates/pds/tests/node/mod.rs, `assert_all_passed`) reads.
import assert from 'node:assert/strict'

let passed = 0
let failed = 0

// Runs one named check; on failure prints it with the summary and exits 1.
export async function step(name, fn) {
  try {
    await fn()
    passed++
    console.log(`ok ${name}`)
  } catch (e) {
    failed++
    console.log(`FAILED ${name}: ${e?.stack ?? e}`)
    console.log(`${passed} passed, ${failed} failed`)
    process.exit(1)
  }
}

// The error a promise rejects with; fails the step when it resolves.
export async function rejection(promise, what = 'the call') {
  try {
    await promise
  } catch (e) {
    return e
  }
  assert.fail(`expected ${what} to fail`)
}

// Prints the summary and exits: 0 only when at least one step ran and none failed.
export function finish() {
  console.log(`${passed} passed, ${failed} failed`)
  process.exit(failed === 0 && passed > 0 ? 0 : 1)
}
