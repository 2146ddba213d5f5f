// A service-auth token minted by our PDS (com.atproto.server.getServiceAuth), verified by the
// official verifier, @atproto/xrpc-server's verifyJwt (pinned through @atproto/pds). Run by
// crates/pds/tests/identity_api.rs with Node 22:
//
//   node service_auth_verify.mjs <token> <aud> <lxm> <signing did:key> <issuer did>
//
// Checks that the token verifies for its audience and method, carries the issuer and a jti, and
// that the verifier refuses it for another audience, another method, or another key. Prints
// `ok <step>` per step and a final `N passed, 0 failed`; exits 1 on the first failure.

import assert from 'node:assert/strict'
import { verifyJwt } from '@atproto/xrpc-server'
import { Secp256k1Keypair } from '@atproto/crypto'
import { finish, rejection, step } from './steps.mjs'

const [token, aud, lxm, didKey, iss] = process.argv.slice(2)
if (!iss) {
  console.error('usage: node service_auth_verify.mjs <token> <aud> <lxm> <did:key> <iss>')
  process.exit(2)
}


const keyOf = (key) => async (did) => {
  assert.equal(did, iss)
  return key
}

await step('verifies for its audience and method', async () => {
  const payload = await verifyJwt(token, aud, lxm, keyOf(didKey))
  assert.equal(payload.iss, iss)
  assert.equal(payload.aud, aud)
  assert.equal(payload.lxm, lxm)
  assert.match(payload.jti, /^[0-9a-f]{32}$/)
  assert.ok(payload.exp * 1000 > Date.now(), 'not expired')
})

await step('verifies without the optional checks', async () => {
  const payload = await verifyJwt(token, null, null, keyOf(didKey))
  assert.equal(payload.iss, iss)
})

await step('refused for another audience', async () => {
  const e = await rejection(verifyJwt(token, 'did:web:other.example.com', lxm, keyOf(didKey)))
  assert.equal(e.error, 'BadJwtAudience')
})

await step('refused for another method', async () => {
  const e = await rejection(verifyJwt(token, aud, 'app.bsky.feed.getAuthorFeed', keyOf(didKey)))
  assert.equal(e.error, 'BadJwtLexiconMethod')
})

await step('refused with another key', async () => {
  const other = await Secp256k1Keypair.create()
  const e = await rejection(verifyJwt(token, aud, lxm, keyOf(other.did())))
  assert.equal(e.error, 'BadJwtSignature')
})

finish()
