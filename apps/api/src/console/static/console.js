// Herald web console: publish with an API key, follow the notification's status, and receive
// notifications on a demo device that runs the SDK's browser bundle in this page.
const KEY_STORAGE = 'herald:console:api-key';
const POLL_MS = 500;
const POLL_FOR_MS = 120_000;
const MAX_LISTED = 100;

const $ = (id) => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing`);
  return el;
};

const show = (el, text) => {
  el.textContent = text;
  el.hidden = !text;
};

let apiKey = sessionStorage.getItem(KEY_STORAGE) ?? '';
let poll;
let client;

/** One API call with the pasted key; throws an Error whose message is the API's `code: message`. */
async function api(method, path) {
  const opts = {
    method,
    headers: { authorization: `Bearer ${apiKey}` },
    signal: AbortSignal.timeout(10_000),
  };
  return request(path, opts);
}

async function request(path, opts) {
  const res = await fetch(path, opts);
  const body = await res.json().catch(() => undefined);
  if (!res.ok) throw new Error(body?.code ? `${body.code}: ${body.message}` : `HTTP ${res.status}`);
  return body;
}

// ---- API key ----

function setupKey() {
  const input = $('api-key');
  input.value = apiKey;
  input.addEventListener('input', () => {
    apiKey = input.value.trim();
    if (apiKey) sessionStorage.setItem(KEY_STORAGE, apiKey);
    else sessionStorage.removeItem(KEY_STORAGE);
  });
  $('forget-key').addEventListener('click', () => {
    apiKey = '';
    input.value = '';
    sessionStorage.removeItem(KEY_STORAGE);
  });
}

// ---- publish and status ----

const PLACEHOLDERS = {
  devices: 'device ids, comma-separated',
  users: 'user ids, comma-separated',
  topic: 'a topic, e.g. news.sport',
  broadcast: 'every device',
};

function target() {
  const kind = $('target-kind').value;
  const value = $('target-value').value.trim();
  if (kind === 'broadcast') return { broadcast: true };
  if (!value) throw new Error(`give the ${kind === 'topic' ? 'topic' : `${kind.slice(0, -1)} ids`}`);
  if (kind === 'topic') return { topic: value };
  return {
    [kind]: value
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  };
}

function publishBody() {
  let data;
  try {
    data = JSON.parse($('data').value);
  } catch (err) {
    throw new Error(`data is not valid JSON: ${err.message}`);
  }
  const body = { to: target(), data };
  const ttl = $('ttl').value.trim();
  if (ttl) body.ttl = Number(ttl);
  return body;
}

/** Forgets the previous notification: its status table must not stand next to a new error. */
function clearResult() {
  clearTimeout(poll);
  $('result').hidden = true;
  $('result-id').textContent = '';
  renderStatus({ state: '-', counts: {} });
  $('status-note').textContent = '';
}

async function publish(event) {
  event.preventDefault();
  show($('publish-error'), '');
  clearResult();
  let body;
  try {
    if (!apiKey) throw new Error('paste an API key first');
    body = publishBody();
  } catch (err) {
    show($('publish-error'), err.message);
    return;
  }
  const button = $('publish');
  button.disabled = true;
  try {
    const res = await request('/v1/notifications', {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    $('result').hidden = false;
    $('result-id').textContent = res.id;
    renderStatus({ state: res.status, counts: {} });
    $('status-note').textContent = 'following its status...';
    followStatus(res.id, Date.now() + POLL_FOR_MS);
  } catch (err) {
    show($('publish-error'), err.message);
  } finally {
    button.disabled = false;
  }
}

function renderStatus(s) {
  $('status-state').textContent = s.state;
  for (const k of ['targets', 'delivered', 'acked', 'expired'])
    $(`count-${k}`).textContent = String(s.counts?.[k] ?? '-');
}

/** Done when nothing more can change: every target acked, or the notification is over. */
function settled(s) {
  if (s.state === 'cancelled' || s.state === 'expired') return true;
  return s.state === 'sent' && s.counts.acked >= s.counts.targets;
}

function followStatus(id, until) {
  const tick = async () => {
    if ($('result-id').textContent !== id) return; // a newer publish took over
    try {
      const s = await api('GET', `/v1/notifications/${encodeURIComponent(id)}`);
      if ($('result-id').textContent !== id) return; // cleared or replaced while this was in flight
      renderStatus(s);
      if (settled(s)) {
        $('status-note').textContent = '';
        return;
      }
    } catch (err) {
      if ($('result-id').textContent !== id) return;
      $('status-note').textContent = `status: ${err.message}`;
    }
    if (Date.now() < until) poll = setTimeout(tick, POLL_MS);
    else $('status-note').textContent = 'stopped following (refresh by publishing again)';
  };
  void tick();
}

function setupPublish() {
  const kind = $('target-kind');
  const value = $('target-value');
  const sync = () => {
    value.placeholder = PLACEHOLDERS[kind.value];
    value.disabled = kind.value === 'broadcast';
  };
  kind.addEventListener('change', sync);
  sync();
  $('target-demo').addEventListener('click', () => {
    kind.value = 'devices';
    value.value = $('demo-device').textContent;
    sync();
  });
  $('publish-form').addEventListener('submit', publish);
}

// ---- demo device ----

/** The demo device's token function: a fresh token from the API on every (re)connect that needs one. */
async function demoToken() {
  try {
    const res = await api('POST', '/console/demo-token');
    return res.token;
  } catch (err) {
    // A wrong key or no token secret will not get better by retrying: stop and say why.
    if (/^HERALD_(UNAUTHORIZED|DEMO_UNAVAILABLE)\b/.test(err.message)) {
      void stopDemo();
      show($('demo-error'), err.message);
    }
    throw err;
  }
}

function setDemoRunning(running) {
  $('demo-start').disabled = running;
  $('demo-stop').disabled = !running;
  $('ws-url').disabled = running;
}

function listNotification(n) {
  const list = $('demo-list');
  const li = document.createElement('li');
  li.dataset.id = n.id;
  const head = document.createElement('code');
  head.textContent = `${n.stream} #${n.seq} ${n.id} `;
  const data = document.createElement('span');
  data.className = 'data';
  data.textContent = JSON.stringify(n.data);
  li.append(head, data);
  list.prepend(li);
  while (list.children.length > MAX_LISTED) list.lastElementChild.remove();
}

async function startDemo() {
  show($('demo-error'), '');
  if (!apiKey) {
    show($('demo-error'), 'paste an API key first');
    return;
  }
  setDemoRunning(true);
  let c;
  try {
    const { HeraldClient } = await import('/console/herald.js');
    const topic = $('demo-topic').value.trim();
    c = new HeraldClient({ url: $('ws-url').value.trim(), token: demoToken, topics: topic ? [topic] : [] });
    client = c;
    c.on('state', (s) => {
      if (client === c) $('demo-state').textContent = s;
    });
    c.on('welcome', (w) => {
      $('demo-node').textContent = w.node;
    });
    c.on('disconnect', () => {
      $('demo-node').textContent = '-';
    });
    c.on('notification', listNotification);
    c.on('error', (e) => {
      if (client !== c) return;
      show($('demo-error'), `${e.code}: ${e.message}`);
      if (e.fatal) void stopDemo();
    });
    await c.connect();
    show($('demo-error'), '');
  } catch (err) {
    // A Stop while connecting is not an error.
    if (!c || client === c) {
      show($('demo-error'), err.message);
      await stopDemo();
    }
  }
}

async function stopDemo() {
  const c = client;
  client = undefined;
  setDemoRunning(false);
  $('demo-node').textContent = '-';
  if (c) await c.close();
  $('demo-state').textContent = 'stopped';
}

function subscribeDemo() {
  const topic = $('demo-topic').value.trim();
  if (!topic || !client) return;
  try {
    client.subscribe(topic);
  } catch (err) {
    show($('demo-error'), err.message);
  }
}

async function setupDemo() {
  const ws = $('ws-url');
  ws.value = `ws://${location.hostname}:8000/v1/ws`;
  $('demo-start').addEventListener('click', () => void startDemo());
  $('demo-stop').addEventListener('click', () => void stopDemo());
  $('demo-subscribe').addEventListener('click', subscribeDemo);
  try {
    const cfg = await request('/console/config', { signal: AbortSignal.timeout(10_000) });
    if (cfg.wsUrl) ws.value = cfg.wsUrl;
    $('demo-device').textContent = cfg.demoDevice;
    if (!cfg.demo) {
      $('demo-unavailable').hidden = false;
      $('demo-start').disabled = true;
    }
  } catch (err) {
    show($('demo-error'), `console config: ${err.message}`);
  }
}

setupKey();
setupPublish();
void setupDemo().finally(() => {
  document.documentElement.dataset.ready = 'true';
});
