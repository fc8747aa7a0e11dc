// The official TypeScript SDK client (@modelcontextprotocol/sdk, v1 line) against mcp-core.
//
// Usage: node ts_client.mjs URL SDK_DIR
//   URL      the server's MCP endpoint, e.g. http://127.0.0.1:8000/mcp
//   SDK_DIR  where the SDK is installed: a folder holding node_modules/@modelcontextprotocol/sdk
//            (what scripts/npm-tools.sh installs into <cache>/ts-sdk), or the package itself
//
// Connects with StreamableHTTPClientTransport (the initialize handshake), lists the tools
// (following cursors), calls tools (echo; structured output; a tool that logs and reports
// progress; a tool that asks for sampling, answered by this client's request handler; a failing
// tool), reads resources, gets a prompt, asks for a completion, then terminates the session
// (DELETE: client.close() alone never sends it) and closes. Prints one JSON summary on stdout,
// with the results and every HTTP exchange the client made. Exit status: 0 when every check
// below passed, 1 when one failed (the summary lists which), 2 on an exception.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const REQUEST_TIMEOUT_MS = 10_000;
const NOTIFICATION_WAIT_MS = 3_000;

const [url, sdkDir] = process.argv.slice(2);
if (!url || !sdkDir) {
  console.error('usage: node ts_client.mjs URL SDK_DIR');
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

// The SDK lives in a cache folder, not next to this script, so it is imported by path (the
// package's "./*" export maps these files).
const root = sdkRoot(sdkDir);
const load = (path) => import(pathToFileURL(join(root, 'dist', 'esm', path)).href);

// Every HTTP exchange, as the client saw it.
const http = [];
async function recordingFetch(input, init = {}) {
  const method = init.method ?? 'GET';
  let rpc = null;
  if (typeof init.body === 'string') {
    try {
      const body = JSON.parse(init.body);
      rpc = body.method ?? ('result' in body || 'error' in body ? 'response' : null);
    } catch {
      rpc = null;
    }
  }
  const response = await fetch(input, init);
  http.push({
    method,
    rpc,
    status: response.status,
    contentType: response.headers.get('content-type'),
    protocolVersion: new Headers(init.headers).get('mcp-protocol-version'),
  });
  return response;
}

async function waitFor(predicate, ms) {
  const deadline = Date.now() + ms;
  while (!predicate() && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return predicate();
}

const texts = (result) => result.content.filter((c) => c.type === 'text').map((c) => c.text);

async function main() {
  const { Client } = await load('client/index.js');
  const { StreamableHTTPClientTransport } = await load('client/streamableHttp.js');
  const types = await load('types.js');
  const sdkVersion = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version;

  const transport = new StreamableHTTPClientTransport(new URL(url), { fetch: recordingFetch });
  const transportErrors = [];
  const client = new Client(
    { name: 'mcp-core-interop-ts', version: '1.0.0' },
    { capabilities: { sampling: {} } },
  );
  const logs = [];
  const samplingRequests = [];
  client.setNotificationHandler(types.LoggingMessageNotificationSchema, (notification) => {
    logs.push(notification.params);
  });
  client.setRequestHandler(types.CreateMessageRequestSchema, (request) => {
    samplingRequests.push(request.params);
    const question = request.params.messages[0]?.content;
    return {
      role: 'assistant',
      content: { type: 'text', text: `you asked ${JSON.stringify(question?.text ?? null)}` },
      model: 'ts-model',
      stopReason: 'endTurn',
    };
  });
  const options = { timeout: REQUEST_TIMEOUT_MS };

  await client.connect(transport, options);
  transport.onerror = (error) => transportErrors.push(String(error?.message ?? error));
  const sessionId = transport.sessionId ?? null;
  const negotiated = transport.protocolVersion ?? null;

  const toolNames = [];
  let pages = 0;
  let cursor;
  do {
    const page = await client.listTools(cursor ? { cursor } : undefined, options);
    pages += 1;
    toolNames.push(...page.tools.map((t) => t.name));
    cursor = page.nextCursor;
  } while (cursor && pages < 10);

  const echo = await client.callTool({ name: 'echo', arguments: { text: 'hi from ts' } }, undefined, options);
  const add = await client.callTool({ name: 'add', arguments: { a: 20, b: 22 } }, undefined, options);
  const progress = [];
  const logged = await client.callTool({ name: 'log_and_progress', arguments: { steps: 3 } }, undefined, {
    ...options,
    onprogress: (p) => progress.push({ progress: p.progress, total: p.total, message: p.message }),
  });
  await waitFor(() => logs.length >= 6 && progress.length >= 3, NOTIFICATION_WAIT_MS);
  const sampled = await client.callTool(
    { name: 'ask_model', arguments: { question: 'What is 6 x 7?' } },
    undefined,
    options,
  );
  const failed = await client.callTool({ name: 'fail', arguments: { reason: 'no luck' } }, undefined, options);
  const greeting = await client.readResource({ uri: 'interop://greeting' }, options);
  const item = await client.readResource({ uri: 'interop://items/a2' }, options);
  const prompt = await client.getPrompt({ name: 'greet', arguments: { name: 'Ada' } }, options);
  const completion = await client.complete(
    { ref: { type: 'ref/prompt', name: 'greet' }, argument: { name: 'name', value: 'al' } },
    options,
  );

  await transport.terminateSession();
  const sessionAfterTerminate = transport.sessionId ?? null;
  await client.close();

  const summary = {
    sdk_version: sdkVersion,
    sdk_latest_protocol_version: types.LATEST_PROTOCOL_VERSION,
    negotiated_protocol_version: negotiated,
    session_id: sessionId,
    session_after_terminate: sessionAfterTerminate,
    server: client.getServerVersion() ?? null,
    capabilities: client.getServerCapabilities() ?? null,
    instructions: client.getInstructions() ?? null,
    tools: toolNames,
    tool_pages: pages,
    echo: texts(echo),
    add: { isError: add.isError ?? false, structuredContent: add.structuredContent ?? null },
    log_and_progress: texts(logged),
    logs: logs.map((l) => ({ level: l.level, logger: l.logger ?? null, data: l.data })),
    progress,
    sampling: { result: texts(sampled), isError: sampled.isError ?? false, requests: samplingRequests },
    fail: { isError: failed.isError ?? false, text: texts(failed) },
    greeting: greeting.contents.map((c) => ({ uri: c.uri, mimeType: c.mimeType ?? null, text: c.text ?? null })),
    item: item.contents.map((c) => c.text ?? null),
    prompt: prompt.messages.map((m) => ({ role: m.role, text: m.content?.text ?? null })),
    completion: completion.completion.values,
    transport_errors: transportErrors,
    http,
  };

  const checks = {
    negotiated: negotiated === '2025-11-25',
    session: typeof sessionId === 'string' && sessionId.length > 0,
    tools: toolNames.includes('echo') && toolNames.includes('ask_model'),
    echo: summary.echo.length === 1 && summary.echo[0] === 'hi from ts',
    structured: add.structuredContent?.total === 42,
    logs: logs.filter((l) => l.level === 'info').length === 3,
    progress: progress.length === 3 && progress[2].progress === 3,
    sampling: samplingRequests.length === 1 && summary.sampling.result[0]?.startsWith('ts-model said:'),
    fail: summary.fail.isError === true,
    resource: summary.greeting[0]?.text === 'Hello from mcp-core',
    prompt: summary.prompt[0]?.text?.includes('Ada') ?? false,
    deleted: http.some((h) => h.method === 'DELETE' && h.status === 200),
  };
  summary.failed_checks = Object.entries(checks)
    .filter(([, ok]) => !ok)
    .map(([name]) => name);
  console.log(JSON.stringify(summary));
  return summary.failed_checks.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(`error: ${error?.stack ?? error}`);
    process.exit(2);
  },
);
