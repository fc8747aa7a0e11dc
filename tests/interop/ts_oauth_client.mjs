// The official TypeScript SDK client (@modelcontextprotocol/sdk, v1 line) through MCP
// authorization against mcp-core's secured server (create_secured_app + the built-in
// authorization server, consent automatic).
//
// Usage: node ts_oauth_client.mjs URL SDK_DIR REDIRECT_URI
//   URL           the server's MCP endpoint (also the RFC 8707 resource), e.g. http://127.0.0.1:8000/mcp
//   SDK_DIR       a folder holding node_modules/@modelcontextprotocol/sdk, or the package itself
//   REDIRECT_URI  the redirect URI to register; never contacted (the "user agent" below stops
//                 at the redirect)
//
// The SDK's `OAuthClientProvider` is implemented here in memory. `redirectToAuthorization` is
// the user agent: it GETs the authorization URL with `redirect: 'manual'` and keeps the code,
// state and iss of the Location it is sent to (consent is automatic, so /authorize answers 302
// at once). The SDK's v1 flow is then the documented one: connect() fails with
// UnauthorizedError after the redirect, `transport.finishAuth(code)` exchanges the code, and a
// new transport (same provider) connects with the token.
//
// Phase 1: authorize, connect, call `add`; print one JSON line, then wait for one line on stdin
// (the test moves the server's clock past the access token's lifetime meanwhile).
// Phase 2: call `add` again: the server refuses the expired token with 401, the SDK refreshes
// and resends; terminate the session, close, print the final JSON line.
// Exit status: 0 when every check passed, 1 when one failed (the last line lists which), 2 on an
// exception.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';

const REQUEST_TIMEOUT_MS = 10_000;
const CLIENT_NAME = 'mcp-core interop (typescript sdk)';

const [url, sdkDir, redirectUri] = process.argv.slice(2);
if (!url || !sdkDir || !redirectUri) {
  console.error('usage: node ts_oauth_client.mjs URL SDK_DIR REDIRECT_URI');
  process.exit(2);
}

function sdkRoot(dir) {
  const packageJson = join(dir, 'package.json');
  if (existsSync(packageJson)) {
    const name = JSON.parse(readFileSync(packageJson, 'utf8')).name;
    if (name === '@modelcontextprotocol/sdk') return dir;
  }
  return join(dir, 'node_modules', '@modelcontextprotocol', 'sdk');
}

const root = sdkRoot(sdkDir);
const load = (path) => import(pathToFileURL(join(root, 'dist', 'esm', path)).href);

// Lines from the test, one at a time.
const stdinLines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

// Everything the client keeps for its "session" with the server, in memory.
class MemoryProvider {
  constructor() {
    this.client = undefined;
    this.savedTokens = undefined;
    this.verifier = undefined;
    this.discovery = undefined;
    this.redirects = []; // every trip through /authorize: { url, status, location }
    this.states = [];
  }

  get redirectUrl() {
    return redirectUri;
  }

  get clientMetadata() {
    return {
      redirect_uris: [redirectUri],
      client_name: CLIENT_NAME,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }

  state() {
    const state = crypto.randomUUID();
    this.states.push(state);
    return state;
  }

  clientInformation() {
    return this.client;
  }

  saveClientInformation(information) {
    this.client = information;
  }

  tokens() {
    return this.savedTokens;
  }

  saveTokens(tokens) {
    this.savedTokens = tokens;
  }

  saveCodeVerifier(verifier) {
    this.verifier = verifier;
  }

  codeVerifier() {
    if (!this.verifier) throw new Error('no code verifier saved');
    return this.verifier;
  }

  saveDiscoveryState(state) {
    this.discovery = state;
  }

  discoveryState() {
    return this.discovery;
  }

  // The user agent: follow nothing, keep where the server sends the browser.
  async redirectToAuthorization(authorizationUrl) {
    const response = await fetch(authorizationUrl, { redirect: 'manual' });
    await response.body?.cancel();
    this.redirects.push({
      url: authorizationUrl.href,
      status: response.status,
      location: response.headers.get('location') ?? '',
    });
  }

  // The code, state and iss the last redirect carried to the callback.
  callback() {
    const last = this.redirects.at(-1);
    if (!last || !last.location) throw new Error('no redirect to the callback was received');
    const params = new URL(last.location).searchParams;
    return { code: params.get('code'), state: params.get('state'), iss: params.get('iss') };
  }
}

const summaryOf = (result) => ({
  isError: result.isError ?? false,
  structuredContent: result.structuredContent ?? null,
});

async function main() {
  const { Client } = await load('client/index.js');
  const { StreamableHTTPClientTransport } = await load('client/streamableHttp.js');
  const { UnauthorizedError } = await load('client/auth.js');
  const sdkVersion = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version;
  const options = { timeout: REQUEST_TIMEOUT_MS };
  const provider = new MemoryProvider();
  const newClient = () => new Client({ name: 'mcp-core-oauth-interop-ts', version: '1.0.0' });
  const failed = [];

  // ---- phase 1: no credentials yet
  const firstTransport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
  let firstConnect = 'connected';
  try {
    await newClient().connect(firstTransport, options);
  } catch (error) {
    firstConnect = error instanceof UnauthorizedError ? 'UnauthorizedError' : String(error?.stack ?? error);
  }
  const { code, state, iss } = provider.callback();
  if (state !== provider.states.at(-1)) failed.push('state');
  if (iss !== new URL(url).origin) failed.push('iss');
  await firstTransport.finishAuth(code);
  await firstTransport.close();

  const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
  const client = newClient();
  await client.connect(transport, options);
  const add = await client.callTool({ name: 'add', arguments: { a: 20, b: 22 } }, undefined, options);
  if (add.structuredContent?.total !== 42) failed.push('add');
  console.log(
    JSON.stringify({
      sdk_version: sdkVersion,
      first_connect: firstConnect,
      protocol_version: transport.protocolVersion ?? null,
      session_id: transport.sessionId ?? null,
      client_id: provider.client?.client_id ?? null,
      redirects: provider.redirects,
      tokens: provider.savedTokens ?? null,
      add: summaryOf(add),
    }),
  );

  // ---- phase 2: the test has expired the access token
  const next = await stdinLines.next();
  if (next.done) throw new Error('stdin closed before the test expired the tokens');
  const before = provider.savedTokens;
  const again = await client.callTool({ name: 'add', arguments: { a: 1, b: 2 } }, undefined, options);
  if (again.structuredContent?.total !== 3) failed.push('add_after_expiry');
  if (provider.savedTokens?.access_token === before?.access_token) failed.push('refreshed');
  if (provider.redirects.length !== 1) failed.push('no_second_redirect');
  await transport.terminateSession();
  await client.close();
  console.log(
    JSON.stringify({
      add_after_expiry: summaryOf(again),
      tokens: provider.savedTokens ?? null,
      session_after_terminate: transport.sessionId ?? null,
      failed_checks: failed,
    }),
  );
  return failed.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(`error: ${error?.stack ?? error}`);
    process.exit(2);
  },
);
