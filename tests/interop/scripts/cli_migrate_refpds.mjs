// A reference PDS (@atproto/pds) that stays up while `pds migrate` (another process) talks to it, for
// crates/pds/tests/cli_migrate.rs. Two modes:
//
//   node scripts/cli_migrate_refpds.mjs serve --plc <PLC url> --dir <data dir> --handle-domain .x.test
//        [--fill <handle> --password <pw> --email <e> --posts 500 --blobs 10]
//     Starts the PDS on 127.0.0.1 (startRefPds in migrate_lib.mjs), optionally creates an account with
//     `posts` posts (the first `blobs` with an image), a profile and preferences, prints one line
//     `READY {"url","publicUrl","accountDb","did"}` and runs until its stdin closes or SIGTERM.
//
//   node scripts/cli_migrate_refpds.mjs token <account.sqlite> <did>
//     Prints the live plc_operation email token of <did> (the reference keeps it in its account
//     database when no SMTP is configured): the --plc-token-cmd of the test.
import { AtpAgent } from '@atproto/api'
import { fillAccount, parseArgs, readPlcToken, startRefPds } from './migrate_lib.mjs'

const [mode, ...rest] = process.argv.slice(2)
if (mode === 'token') {
  const [db, did] = rest
  if (!db || !did) {
    console.error('usage: cli_migrate_refpds.mjs token <account.sqlite> <did>')
    process.exit(2)
  }
  console.log(readPlcToken(db, did))
  process.exit(0)
}
if (mode !== 'serve') {
  console.error('usage: cli_migrate_refpds.mjs serve|token ...')
  process.exit(2)
}
const args = parseArgs(rest)
const pds = await startRefPds({ plcUrl: args.plc, dataDir: args.dir, handleDomain: args['handle-domain'] })
let did = null
if (args.fill) {
  const agent = new AtpAgent({ service: pds.url })
  await agent.createAccount({ handle: args.fill, email: args.email, password: args.password })
  await fillAccount(agent, { posts: Number(args.posts ?? 500), blobs: Number(args.blobs ?? 10) })
  did = agent.session.did
}
const stop = async () => {
  try {
    await pds.stop()
  } finally {
    process.exit(0)
  }
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
process.stdin.on('end', stop)
process.stdin.on('close', stop)
process.stdin.resume()
console.log('READY ' + JSON.stringify({ url: pds.url, publicUrl: pds.publicUrl, accountDb: pds.accountDb, did }))
