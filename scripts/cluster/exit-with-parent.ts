/**
 * Preloaded (`node --import`) into every Strata process that the local cluster starts. The cluster starts its
 * processes in their own process groups, so that Ctrl-C reaches only the cluster script, which then stops them in
 * order. The price is that a cluster script that dies without stopping them (SIGKILL, a test runner killed on a
 * timeout) would leave them running, holding ports and data. When that happens the kernel gives the process a new
 * parent; this notices and stops the process as SIGTERM would. Test infrastructure only: cmd/ knows nothing of it.
 */

/** How often the parent is checked; a leftover process lives at most about this long. */
const PARENT_CHECK_INTERVAL_MS = 1000;

const parentPid = process.ppid;
const timer = setInterval(() => {
  if (process.ppid === parentPid) return;
  clearInterval(timer);
  process.kill(process.pid, 'SIGTERM');
}, PARENT_CHECK_INTERVAL_MS);
// Never the reason a process stays alive.
timer.unref();
