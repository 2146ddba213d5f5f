// Account migration, ours → a fresh reference PDS, driven with @atproto/api as a migration tool would
// (the same official flow as migrate_ref_to_ours.mjs, with our server as the old host: getServiceAuth,
// getRepo, listBlobs/getBlob, getPreferences, requestPlcOperationSignature, signPlcOperation,
// deactivateAccount). Run by crates/pds/tests/interop_migration.rs after migrate_ref_to_ours.mjs:
//
//   node scripts/migrate_ours_to_ref.mjs --plc <PLC url> --ours <our url> --ours-db <our pds.sqlite>
//        --work <dir> --did <did> --handle <handle on ours> --password <password on ours>
//
// Our server keeps no SMTP here, so the one-time PLC token is read from our database (as `pds account
// token` would show it). Checks the issue's "done when" list on the new host, and our firehose
// (#account inactive) and the new host's (#identity, #account, #sync). Prints `ok <step>` per step and
// `N passed, 0 failed`.

import assert from 'node:assert/strict'
import path from 'node:path'
import { AtpAgent } from '@atproto/api'
import {
  checkMigrated,
  checkSyncEvent,
  log,
  migrate,
  plcAudit,
  readPlcToken,
  requireArgs,
  snapshotFilled,
  startRefPds,
  step,
  summary,
  watchFirehose,
} from './migrate_lib.mjs'

const args = requireArgs(process.argv.slice(2), ['plc', 'ours', 'ours-db', 'work', 'did', 'handle', 'password'])
const did = args.did

const oldAgent = new AtpAgent({ service: args.ours })
await step('log in on our host (old host)', async () => {
  await oldAgent.login({ identifier: args.handle, password: args.password })
  assert.equal(oldAgent.session.did, did)
})
const before = await snapshotFilled('snapshot on our host', oldAgent, did)
const fresh = await step('start a fresh reference PDS (new host)', () =>
  startRefPds({ plcUrl: args.plc, dataDir: path.join(args.work, 'ref-new'), handleDomain: '.refnew.test' }),
)
const auditBefore = await plcAudit(args.plc, did)
const oursFirehose = watchFirehose(args.ours, args.plc, did)
const theirs = watchFirehose(fresh.url, args.plc, did)

const moved = await step('migrate with the official flow', () =>
  migrate({
    oldAgent,
    newService: fresh.url,
    handle: 'alice.refnew.test',
    email: 'alice@newer.example.com',
    password: 'newer-password',
    plcToken: (d) => readPlcToken(args['ours-db'], d),
    log,
  }),
)
await checkMigrated({
  did,
  before,
  plcUrl: args.plc,
  auditBefore,
  oldAgent,
  newAgent: moved.newAgent,
  newPublicUrl: fresh.publicUrl,
  creds: moved.creds,
  resignByWrite: true,
})
await step('our firehose: #account inactive (deactivated)', async () => {
  await oursFirehose.waitFor('#account', (evts) => evts.some((e) => e.event === 'account'))
  const account = oursFirehose.events.find((e) => e.event === 'account')
  assert.equal(account.active, false)
  assert.equal(account.status, 'deactivated')
})
await step("the new host's firehose: #identity, #account and #sync", async () => {
  await theirs.waitFor('#sync', (evts) => evts.some((e) => e.event === 'sync'))
  const kinds = theirs.events.map((e) => e.event)
  assert.ok(kinds.includes('identity'), kinds.join(','))
  assert.ok(kinds.includes('account'), kinds.join(','))
  const sync = theirs.events.find((e) => e.event === 'sync')
  // The reference keeps serving the old host's signature after an import; we only check the shape.
  assert.equal(sync.did, did)
  const signedByNew = await checkSyncEvent(sync, did, moved.creds.verificationMethods.atproto, before.data)
    .then(() => true)
    .catch(() => false)
  log(`reference #sync commit signed with the new key: ${signedByNew}`)
})
await oursFirehose.stop()
await theirs.stop()
await fresh.stop()
summary()
process.exit(0)
