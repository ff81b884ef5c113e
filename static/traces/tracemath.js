// Pure computations of the trace page, on the spans of one trace (no DOM): self time, the
// critical path and per-service / per-operation statistics. The page's waterfall.js uses them;
// tests call them through window.TraceMath on traces with known answers.
//
// Input: `items`, the trace's nodes in tree order, items[0] the trace itself (the parent of the
// top-level spans); each item {start, end, children: [indices of its child spans]}. Children
// are clipped to their parent's interval (a child reported as starting before its parent or
// ending after it, clock skew between hosts, only counts inside it); a child wholly outside its
// parent counts for nothing.
(function () {
  "use strict";

  // Each item's interval clipped to its parent's (top-down), as [start, end] arrays; an item
  // outside its parent gets start > end.
  function clipped(items) {
    const start = new Array(items.length), end = new Array(items.length);
    if (!items.length) return {start, end};
    start[0] = items[0].start; end[0] = items[0].end;
    for (let i = 0; i < items.length; i++) {
      for (const c of items[i].children) {
        start[c] = Math.max(items[c].start, start[i]);
        end[c] = Math.min(items[c].end, end[i]);
      }
    }
    return {start, end};
  }

  // Length of the union of intervals [[s, e], ...].
  function unionLength(intervals) {
    intervals.sort((a, b) => a[0] - b[0]);
    let total = 0, curStart = null, curEnd = null;
    for (const [s, e] of intervals) {
      if (e <= s) continue;
      if (curEnd === null || s > curEnd) {
        if (curEnd !== null) total += curEnd - curStart;
        curStart = s; curEnd = e;
      } else if (e > curEnd) {
        curEnd = e;
      }
    }
    if (curEnd !== null) total += curEnd - curStart;
    return total;
  }

  // Self time of every item: its (clipped) duration minus the union of its children's
  // intervals, i.e. the time no child of it was running.
  function selfTimes(items) {
    const {start, end} = clipped(items);
    return items.map((item, i) => {
      const own = Math.max(0, end[i] - start[i]);
      if (!own) return 0;
      const kids = item.children.map((c) => [start[c], end[c]]);
      return Math.max(0, own - unionLength(kids));
    });
  }

  // The critical path, as Jaeger draws it: from the end of the trace backwards, the time is
  // charged to the span then running on the path; at each span, the child that finished last
  // (before the point reached) is followed into, and once a span has no child left the walk
  // goes back up to its parent at the moment it started. Returns its sections, latest first:
  // [{item, start, end}] (item 0, the trace itself, for time no top-level span covers).
  function criticalPath(items) {
    if (!items.length) return [];
    const {start, end} = clipped(items);
    const parent = new Array(items.length).fill(-1);
    items.forEach((item, i) => item.children.forEach((c) => { parent[c] = i; }));
    // Each item's children by end, latest first (on equal ends the later start). The point
    // reached in an item only moves back in time, so a child passed over (ending after it)
    // never qualifies again: one cursor per item, O(n log n) in all.
    const order = new Map(), cursor = new Map();
    function candidates(i) {
      let list = order.get(i);
      if (!list) {
        list = items[i].children.filter((c) => end[c] > start[c])
          .sort((a, b) => end[b] - end[a] || start[b] - start[a]);
        order.set(i, list); cursor.set(i, 0);
      }
      return list;
    }
    const sections = [];
    let current = 0, bound = end[0];
    for (let guard = 0; guard < 2 * items.length + 2; guard++) {
      const list = candidates(current);
      let at = cursor.get(current);
      while (at < list.length && end[list[at]] > bound) at++;
      cursor.set(current, at);
      if (at < list.length) {  // the child that finished last before `bound`: follow it
        const next = list[at];
        cursor.set(current, at + 1);
        if (end[next] < bound) sections.push({item: current, start: end[next], end: bound});
        current = next; bound = end[next];
        continue;
      }
      if (bound > start[current]) sections.push({item: current, start: start[current], end: bound});
      if (parent[current] < 0) break;
      bound = start[current];  // back in the parent, at the moment this span started
      current = parent[current];
    }
    return sections;
  }

  // Statistics per group (`key(i)` names an item's group, null to leave it out): spans, errors,
  // total and self time, longest.
  function stats(items, selfs, key, isError) {
    const groups = new Map();
    for (let i = 0; i < items.length; i++) {
      const name = key(i);
      if (name === null || name === undefined) continue;
      let group = groups.get(name);
      if (!group) groups.set(name, group = {name, count: 0, errors: 0, total: 0, self: 0, max: 0});
      const duration = Math.max(0, items[i].end - items[i].start);
      group.count += 1;
      group.total += duration;
      group.self += selfs[i];
      group.max = Math.max(group.max, duration);
      if (isError(i)) group.errors += 1;
    }
    return [...groups.values()].sort((a, b) => b.self - a.self || (a.name < b.name ? -1 : 1));
  }

  window.TraceMath = {selfTimes, criticalPath, stats, unionLength};
})();
