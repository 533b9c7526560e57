/* forge-shim dashboard: polls /dashboard.json (the same figures as
 * /metrics, plus the status rows) and draws the seed's five views with
 * Chart.js. Trends are kept in this page only, for as long as it is open:
 * the shim stores no history (Prometheus does). */
(function () {
  'use strict';

  var POLL_MS = 2000;
  /* Points kept per trend: ten minutes at one poll every two seconds. */
  var HISTORY = 300;
  var STATES = ['running', 'sleeping', 'deep_sleep', 'user_paused', 'stopped'];
  var STATE_LABELS = {
    running: 'running',
    sleeping: 'sleeping',
    deep_sleep: 'deep sleep',
    user_paused: 'paused by a user',
    stopped: 'stopped'
  };
  var PRIORITIES = ['high', 'normal', 'low', 'unset'];
  /* The seed's wake targets by priority, in seconds. */
  var WAKE_TARGET = { high: 0.05, normal: 0.2, low: 0.5 };

  var css = getComputedStyle(document.documentElement);
  function color(name) { return css.getPropertyValue('--' + name).trim() || '#888'; }
  var STATE_COLORS = STATES.map(color);
  var PRIORITY_COLORS = { high: '#c0392b', normal: '#3b6fd8', low: '#2e8b57', unset: '#8a8f99' };

  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.font.family = '"DejaVu Sans", system-ui, sans-serif';

  var trend = {
    labels: [],
    memory: {},
    cpu: {},
    saved: [],
    responses: [],
    transitions: [],
    hostMemory: [],
    hostLoad: []
  };
  STATES.forEach(function (s) { trend.memory[s] = []; trend.cpu[s] = []; });

  var previous = null;
  var charts = {};

  /* ---- reading the snapshot ---- */

  function matching(snapshot, name, labels) {
    return snapshot.series.filter(function (s) {
      if (s.name !== name) { return false; }
      for (var key in labels) {
        if (s.labels[key] !== labels[key]) { return false; }
      }
      return true;
    });
  }

  function total(snapshot, name, labels) {
    return matching(snapshot, name, labels || {}).reduce(function (sum, s) {
      return sum + (s.value || 0);
    }, 0);
  }

  function first(snapshot, name, labels) {
    var found = matching(snapshot, name, labels || {});
    return found.length ? found[0].value : null;
  }

  /* Wake-time buckets of one priority (all priorities when null): the
   * bounds in seconds, ascending with Infinity last, and the cumulative
   * counts. */
  function wakeBuckets(snapshot, priority) {
    var byBound = {};
    matching(snapshot, 'forge_shim_wake_seconds_bucket', priority ? { priority: priority } : {})
      .forEach(function (s) {
        var bound = s.labels.le === '+Inf' ? Infinity : parseFloat(s.labels.le);
        byBound[bound] = (byBound[bound] || 0) + (s.value || 0);
      });
    var bounds = Object.keys(byBound).map(Number).sort(function (a, b) { return a - b; });
    return { bounds: bounds, cumulative: bounds.map(function (b) { return byBound[b]; }) };
  }

  /* The q-quantile of a cumulative histogram, interpolated inside its
   * bucket as Prometheus's histogram_quantile does; null with no samples. */
  function quantile(buckets, q) {
    var n = buckets.cumulative.length;
    if (!n || buckets.cumulative[n - 1] === 0) { return null; }
    var rank = q * buckets.cumulative[n - 1];
    for (var i = 0; i < n; i++) {
      if (buckets.cumulative[i] >= rank) {
        var upper = buckets.bounds[i];
        if (upper === Infinity) { return buckets.bounds[n - 2] || null; }
        var lower = i === 0 ? 0 : buckets.bounds[i - 1];
        var below = i === 0 ? 0 : buckets.cumulative[i - 1];
        var inBucket = buckets.cumulative[i] - below;
        return inBucket ? lower + (upper - lower) * (rank - below) / inBucket : upper;
      }
    }
    return null;
  }

  /* Wakes slower than their priority's target: the seed's targets are
   * bucket bounds, so this is a count, not an estimate. */
  function wakesOverTarget(snapshot) {
    var over = 0;
    Object.keys(WAKE_TARGET).forEach(function (priority) {
      var b = wakeBuckets(snapshot, priority);
      var at = b.bounds.indexOf(WAKE_TARGET[priority]);
      if (at >= 0) { over += b.cumulative[b.cumulative.length - 1] - b.cumulative[at]; }
    });
    return over;
  }

  /* ---- formatting ---- */

  function bytes(n) {
    if (n === null || n === undefined) { return '-'; }
    var units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    var i = 0;
    while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n.toFixed(0) : n.toFixed(1)) + ' ' + units[i];
  }
  /* A long container name, its start and end kept. */
  function shorten(name) {
    return name.length > 24 ? name.slice(0, 8) + '\u2026' + name.slice(-14) : name;
  }
  function mib(n) { return n === null || n === undefined ? null : n / 1048576; }
  function seconds(s) {
    if (s === null || s === undefined) { return '-'; }
    if (s < 1) { return (s * 1000).toFixed(s < 0.01 ? 1 : 0) + ' ms'; }
    if (s < 120) { return s.toFixed(1) + ' s'; }
    if (s < 7200) { return (s / 60).toFixed(1) + ' min'; }
    return (s / 3600).toFixed(1) + ' h';
  }
  function percent(part, whole) {
    return whole > 0 ? (100 * part / whole).toFixed(2) + ' %' : '-';
  }
  function setText(id, text, bad) {
    var el = document.getElementById(id);
    el.textContent = text;
    el.classList.toggle('bad', !!bad);
  }
  function clock(ms) {
    var d = new Date(ms);
    function two(n) { return (n < 10 ? '0' : '') + n; }
    return two(d.getHours()) + ':' + two(d.getMinutes()) + ':' + two(d.getSeconds());
  }
  function push(list, value) {
    list.push(value);
    if (list.length > HISTORY) { list.shift(); }
  }

  /* ---- charts ---- */

  function lineChart(id, datasets, yTitle, yMax) {
    return new Chart(document.getElementById(id), {
      type: 'line',
      data: { labels: trend.labels, datasets: datasets },
      options: {
        spanGaps: true,
        elements: { point: { radius: 0 }, line: { borderWidth: 2, tension: 0.2 } },
        scales: {
          x: { ticks: { maxTicksLimit: 6, autoSkip: true } },
          y: { beginAtZero: true, max: yMax, title: { display: !!yTitle, text: yTitle } }
        },
        plugins: { legend: { labels: { boxWidth: 12 } } }
      }
    });
  }

  function makeCharts() {
    charts.states = new Chart(document.getElementById('chart-states'), {
      type: 'doughnut',
      data: {
        labels: STATES.map(function (s) { return STATE_LABELS[s]; }),
        datasets: [{ data: STATES.map(function () { return 0; }), backgroundColor: STATE_COLORS }]
      },
      options: { plugins: { legend: { position: 'bottom', labels: { boxWidth: 12 } } } }
    });
    charts.memory = lineChart('chart-memory', STATES.map(function (s, i) {
      return { label: STATE_LABELS[s], data: trend.memory[s], borderColor: STATE_COLORS[i],
               backgroundColor: STATE_COLORS[i] };
    }), 'MiB');
    charts.cpu = lineChart('chart-cpu', STATES.slice(0, 4).map(function (s, i) {
      return { label: STATE_LABELS[s], data: trend.cpu[s], borderColor: STATE_COLORS[i],
               backgroundColor: STATE_COLORS[i] };
    }), 'millicores');
    charts.wake = new Chart(document.getElementById('chart-wake'), {
      type: 'bar',
      data: { labels: [], datasets: [] },
      options: {
        scales: {
          x: { stacked: true, title: { display: true, text: 'wake time up to' } },
          y: { stacked: true, beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: 'wakes' } }
        },
        plugins: { legend: { labels: { boxWidth: 12 } } }
      }
    });
    charts.availability = lineChart('chart-availability', [
      { label: 'responses not 5xx', data: trend.responses, borderColor: '#2e8b57', backgroundColor: '#2e8b57' },
      { label: 'transitions ok', data: trend.transitions, borderColor: '#3b6fd8', backgroundColor: '#3b6fd8' }
    ], '%', 100);
    charts.saved = lineChart('chart-saved', [
      { label: 'memory saved', data: trend.saved, borderColor: '#3b6fd8', backgroundColor: 'rgba(59,111,216,0.25)', fill: true }
    ], 'MiB');
    charts.cost = new Chart(document.getElementById('chart-cost'), {
      type: 'bar',
      data: {
        labels: [],
        datasets: [
          { label: 'when awake', data: [], backgroundColor: '#8a8f99' },
          { label: 'now', data: [], backgroundColor: '#3b6fd8' }
        ]
      },
      options: {
        indexAxis: 'y',
        /* Room for a label measured before the page's font was ready. */
        layout: { padding: { left: 8 } },
        scales: {
          x: { beginAtZero: true, title: { display: true, text: 'MiB' } },
          y: { ticks: { callback: function (value) { return shorten(this.getLabelForValue(value)); } } }
        },
        plugins: { legend: { labels: { boxWidth: 12 } } }
      }
    });
    charts.host = lineChart('chart-host', [
      { label: 'memory used', data: trend.hostMemory, borderColor: '#c98a12', backgroundColor: '#c98a12' },
      { label: 'load per CPU', data: trend.hostLoad, borderColor: '#6a4fc1', backgroundColor: '#6a4fc1' }
    ], '%');
  }

  /* ---- the views ---- */

  function showStates(snapshot) {
    STATES.forEach(function (s) {
      var n = snapshot.counts[s];
      setText('count-' + s, n === undefined ? '-' : String(n));
    });
    charts.states.data.datasets[0].data = STATES.map(function (s) { return snapshot.counts[s] || 0; });

    var body = document.querySelector('#containers tbody');
    var rows = snapshot.containers.map(function (c) {
      var tr = document.createElement('tr');
      tr.dataset.name = c.name;
      tr.dataset.state = c.state;
      tr.dataset.countedAs = c.counted_as || '';
      [
        c.name,
        c.class,
        c.state.replace('_', ' '),
        seconds(c.idle_for_s),
        String(c.wakes),
        c.last_wake_ms === null ? '-' : seconds(c.last_wake_ms / 1000),
        bytes(c.memory_bytes),
        bytes(c.memory_limit_bytes)
      ].forEach(function (text, i) {
        var td = document.createElement('td');
        td.textContent = text;
        if (i === 2) { td.className = 'state ' + c.state; }
        tr.appendChild(td);
      });
      return tr;
    });
    body.replaceChildren.apply(body, rows);
  }

  /* CPU cores used since the previous poll, by the state each container
   * is counted under now. */
  function cpuByState(snapshot) {
    var cores = {};
    STATES.forEach(function (s) { cores[s] = 0; });
    if (!previous) { return null; }
    var dt = (snapshot.at_unix_ms - previous.at_unix_ms) / 1000;
    if (dt <= 0) { return null; }
    var before = {};
    previous.containers.forEach(function (c) { before[c.name] = c.cpu_seconds; });
    snapshot.containers.forEach(function (c) {
      var was = before[c.name];
      if (c.cpu_seconds === null || was === null || was === undefined || c.cpu_seconds < was) { return; }
      cores[c.counted_as || 'running'] += (c.cpu_seconds - was) / dt;
    });
    return cores;
  }

  function showResources(snapshot, cores) {
    STATES.forEach(function (s) {
      push(trend.memory[s], mib(first(snapshot, 'forge_shim_memory_bytes', { state: s })));
      /* Millicores: idle containers use a few thousandths of a core. */
      push(trend.cpu[s], cores ? 1000 * cores[s] : null);
    });
  }

  function showPerformance(snapshot) {
    var all = wakeBuckets(snapshot, null);
    var wakes = all.cumulative.length ? all.cumulative[all.cumulative.length - 1] : 0;
    setText('wake-count', String(wakes));
    var p50 = quantile(all, 0.5);
    var p95 = quantile(all, 0.95);
    setText('wake-quantiles', p50 === null ? '-' : seconds(p50) + ' / ' + seconds(p95));
    var over = wakesOverTarget(snapshot);
    setText('wake-over-target', String(over), over > 0);

    var labels = all.bounds.map(function (b, i) {
      return b === Infinity ? '> ' + seconds(all.bounds[i - 1]) : seconds(b);
    });
    charts.wake.data.labels = labels;
    charts.wake.data.datasets = PRIORITIES.map(function (priority) {
      var b = wakeBuckets(snapshot, priority);
      var perBucket = all.bounds.map(function (bound) {
        var i = b.bounds.indexOf(bound);
        if (i < 0) { return 0; }
        return b.cumulative[i] - (i > 0 ? b.cumulative[i - 1] : 0);
      });
      return { label: priority, data: perBucket, backgroundColor: PRIORITY_COLORS[priority] };
    }).filter(function (d) { return d.data.some(function (v) { return v > 0; }); });

    var responses = total(snapshot, 'forge_shim_responses_total');
    var failed = total(snapshot, 'forge_shim_responses_total', { code: '5xx' });
    setText('availability-responses', percent(responses - failed, responses));
    var transitions = total(snapshot, 'forge_shim_transitions_total');
    var transitionsFailed = total(snapshot, 'forge_shim_transitions_total', { result: 'error' });
    setText('availability-transitions', percent(transitions - transitionsFailed, transitions));

    /* Since the shim started: a poll with no request in it has no
     * availability of its own, and a gap would read as an outage. */
    push(trend.responses, responses > 0 ? 100 * (responses - failed) / responses : null);
    push(trend.transitions, transitions > 0 ? 100 * (transitions - transitionsFailed) / transitions : null);
  }

  function showCost(snapshot, cores) {
    var saved = first(snapshot, 'forge_shim_memory_saved_bytes');
    setText('memory-saved', bytes(saved));
    push(trend.saved, mib(saved));
    var asleep = snapshot.containers.filter(function (c) {
      return c.counted_as === 'sleeping' || c.counted_as === 'deep_sleep';
    });
    setText('cpu-sleepers', cores ? (cores.sleeping + cores.deep_sleep).toFixed(3) + ' cores' : '-');
    var freed = asleep.reduce(function (sum, c) { return sum + (c.cpu_limit_cores || 0); }, 0);
    setText('cpu-freed', freed.toFixed(2) + ' cores');
    setText('asleep-share', asleep.length + ' of ' + snapshot.containers.length);
    setText('asleep-total', seconds(total(snapshot, 'forge_shim_asleep_seconds_sum')));

    var withFigures = asleep.filter(function (c) { return c.memory_running_bytes !== null; });
    charts.cost.data.labels = withFigures.map(function (c) { return c.name; });
    charts.cost.data.datasets[0].data = withFigures.map(function (c) { return mib(c.memory_running_bytes); });
    charts.cost.data.datasets[1].data = withFigures.map(function (c) { return mib(c.memory_bytes || 0); });
  }

  function showHealth(snapshot) {
    var reachable = snapshot.dockerd.reachable;
    setText('health-dockerd', reachable ? 'reachable' : 'unreachable: ' + (snapshot.dockerd.error || ''), !reachable);
    var responses = total(snapshot, 'forge_shim_responses_total');
    var failed = total(snapshot, 'forge_shim_responses_total', { code: '5xx' });
    setText('health-errors', failed + ' (' + percent(failed, responses) + ')', responses > 0 && failed / responses > 0.05);
    var failedTransitions = total(snapshot, 'forge_shim_transitions_total', { result: 'error' });
    setText('health-failed-transitions', String(failedTransitions), failedTransitions > 0);
    setText('health-connections', first(snapshot, 'forge_shim_connections_open') + ' / ' +
      total(snapshot, 'forge_shim_connections_refused_total'));
    var memTotal = first(snapshot, 'forge_shim_host_memory_bytes', { kind: 'total' });
    var memAvailable = first(snapshot, 'forge_shim_host_memory_bytes', { kind: 'available' });
    setText('health-host-memory', memTotal ? bytes(memAvailable) + ' of ' + bytes(memTotal) : '-',
      memTotal && memAvailable / memTotal < 0.1);
    var load = first(snapshot, 'forge_shim_host_load', { kind: '1m' });
    var cpus = first(snapshot, 'forge_shim_host_cpus', { kind: 'online' });
    setText('health-host-load', load === null ? '-' : load.toFixed(2) + ' / ' + cpus, cpus && load > cpus);
    var unmanaged = total(snapshot, 'forge_shim_unmanaged_creates_total');
    setText('health-unmanaged', String(unmanaged), unmanaged > 0);
    setText('health-denials', String(total(snapshot, 'forge_shim_standards_denials_total')));
    push(trend.hostMemory, memTotal ? 100 * (memTotal - memAvailable) / memTotal : null);
    push(trend.hostLoad, load !== null && cpus ? 100 * load / cpus : null);
  }

  function show(snapshot) {
    var cores = cpuByState(snapshot);
    push(trend.labels, clock(snapshot.at_unix_ms));
    showStates(snapshot);
    showResources(snapshot, cores);
    showPerformance(snapshot);
    showCost(snapshot, cores);
    showHealth(snapshot);
    Object.keys(charts).forEach(function (k) { charts[k].update('none'); });
    previous = snapshot;
    setText('version', 'v' + snapshot.version);
    setText('updated', 'updated ' + clock(snapshot.at_unix_ms));
    document.getElementById('poll-error').hidden = true;
    document.body.dataset.status = 'ok';
    document.body.dataset.polls = String(Number(document.body.dataset.polls) + 1);
  }

  function poll() {
    fetch('/dashboard.json', { cache: 'no-store' })
      .then(function (response) {
        if (!response.ok) { throw new Error('/dashboard.json: HTTP ' + response.status); }
        return response.json();
      })
      .then(show)
      .catch(function (error) {
        var el = document.getElementById('poll-error');
        el.hidden = false;
        el.textContent = 'not updating: ' + error.message;
        document.body.dataset.status = 'error';
      })
      .then(function () { setTimeout(poll, POLL_MS); });
  }

  makeCharts();
  poll();
})();
