/* test.h: the tiny harness every C test program uses.
 * Each test function is run by TEST_RUN and reported as one line, "PASS name" or "FAIL name" (or
 * "SKIP name: why"); tests/run.sh counts those lines over all programs into "N passed, M failed".
 * EXPECT records a failure and goes on, so one run shows every broken check.
 * expect_fatal forks, runs a function that should end the process through amd_fatal, and checks
 * the exit status and that stderr names the problem. */
#pragma once
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int t_case_failures, t_passed, t_failed, t_skipped;
static const char *t_skip_reason;

#define EXPECT(cond, ...)                                                      \
  do {                                                                         \
    if (!(cond)) {                                                             \
      t_case_failures++;                                                       \
      fprintf(stdout, "  check failed at %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stdout, __VA_ARGS__);                                            \
      fprintf(stdout, "\n");                                                   \
    }                                                                          \
  } while (0)

/* |a - b| <= atol + rtol * |b| */
#define EXPECT_CLOSE(a, b, atol, rtol, what)                                               \
  do {                                                                                     \
    double t_a_ = (a), t_b_ = (b);                                                         \
    EXPECT(fabs(t_a_ - t_b_) <= (atol) + (rtol) * fabs(t_b_), "%s: %.9g vs %.9g", (what), t_a_, t_b_); \
  } while (0)

static inline void t_skip(const char *why) { t_skip_reason = why; }

static inline void t_run(const char *name, void (*fn)(void)) {
  t_case_failures = 0;
  t_skip_reason = NULL;
  fflush(stdout);
  fn();
  if (t_skip_reason) {
    printf("SKIP %s: %s\n", name, t_skip_reason);
    t_skipped++;
  } else if (t_case_failures) {
    printf("FAIL %s\n", name);
    t_failed++;
  } else {
    printf("PASS %s\n", name);
    t_passed++;
  }
  fflush(stdout);
}
#define TEST_RUN(fn) t_run(#fn, fn)

static inline int t_finish(void) { return t_failed ? 1 : 0; }

/* Runs fn(arg) in a child; returns 1 when it exited non-zero and its stderr contains `needle`. */
static inline int expect_fatal(void (*fn)(void *), void *arg, const char *needle) {
  int fds[2];
  if (pipe(fds) != 0) return 0;
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], 2);
    fn(arg);
    _exit(0);
  }
  close(fds[1]);
  char buf[8192];
  size_t n = 0;
  ssize_t r;
  while ((r = read(fds[0], buf + n, sizeof buf - 1 - n)) > 0) n += (size_t)r;
  buf[n] = '\0';
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  int failed = WIFEXITED(status) && WEXITSTATUS(status) != 0;
  int named = strstr(buf, needle) != NULL;
  if (!failed || !named)
    printf("  expected a fatal error naming '%s'; exit %s, stderr: %s\n", needle,
           failed ? "non-zero" : "zero", buf);
  return failed && named;
}
