/* SPDX-License-Identifier: MIT */
/* pinrig guest workloads: program start-up and the shared flags (see cli.h). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "report.h"

/* the shared long options; val doubles as the getopt return */
static const struct {
	unsigned flag;
	struct option opt;
} shared_opts[] = {
	{ CLI_FILE, { "file", required_argument, NULL, 'f' } },
	{ CLI_SRC, { "src", required_argument, NULL, 'r' } },
	{ CLI_SIZE | CLI_SIZE_ANY, { "size", required_argument, NULL, 's' } },
	{ CLI_SEED, { "seed", required_argument, NULL, 'S' } },
	{ CLI_MAP, { "map", required_argument, NULL, 'm' } },
	{ CLI_DEVICE, { "device", required_argument, NULL, 'd' } },
	{ CLI_TIMEOUT, { "timeout", required_argument, NULL, 't' } },
	{ CLI_HOLD, { "hold", no_argument, NULL, 'H' } },
};
#define N_SHARED (sizeof(shared_opts) / sizeof(shared_opts[0]))
#define MAX_OPTS 32

static const struct program *prog;

const char *map_name(bool shared)
{
	return shared ? "shared" : "private";
}

/* the message for a getopt_long '?' return */
static const char *bad_option(int argc, char **argv, int opt_optopt, int opt_optind)
{
	static char buf[160];

	if (opt_optopt)
		snprintf(buf, sizeof(buf), "unrecognized or incomplete option '-%c'", opt_optopt);
	else if (opt_optind > 0 && opt_optind <= argc)
		snprintf(buf, sizeof(buf), "unrecognized or incomplete option '%s'", argv[opt_optind - 1]);
	else
		snprintf(buf, sizeof(buf), "unrecognized option");
	return buf;
}

uint64_t cli_range(const char *flag, const char *arg, uint64_t lo, uint64_t hi, const char *unit)
{
	uint64_t v;

	if (!parse_u64(arg, &v) || v < lo || v > hi)
		usage_fail(prog->usage, "%s must be %" PRIu64 "..%" PRIu64 "%s: '%s'", flag, lo, hi, unit, arg);
	return v;
}

/* is c the getopt value of one of the shared flags the program takes? */
static bool takes_shared(int c)
{
	for (size_t i = 0; i < N_SHARED; i++)
		if (shared_opts[i].opt.val == c && (shared_opts[i].flag & prog->common))
			return true;
	return false;
}

/* one shared flag (takes_shared(c)) */
static void shared_opt(int c, const char *arg, struct common_opts *co)
{
	switch (c) {
	case 'f': co->file = arg; break;
	case 'r': co->src = arg; break;
	case 's':
		if (prog->common & CLI_SIZE_ANY) {
			if (!parse_u64(arg, &co->size))
				usage_fail(prog->usage, "--size must be an unsigned integer: '%s'", arg);
		} else if (!parse_size(arg, &co->size)) {
			usage_fail(prog->usage, "--size must be a positive multiple of 4096 up to 1G: '%s'", arg);
		}
		co->have_size = true;
		break;
	case 'S':
		if (!parse_u64(arg, &co->seed))
			usage_fail(prog->usage, "--seed must be an unsigned integer: '%s'", arg);
		co->have_seed = true;
		break;
	case 'm':
		if (!strcmp(arg, "shared"))
			co->shared = true;
		else if (!strcmp(arg, "private"))
			co->shared = false;
		else
			usage_fail(prog->usage, "--map must be shared or private: '%s'", arg);
		break;
	case 'd': co->device = arg; break;
	case 't': co->timeout = (double)cli_range("--timeout", arg, 1, 3600, " seconds"); break;
	case 'H': co->hold = true; break;
	}
}

static void parse_args(struct common_opts *co, int argc, char **argv)
{
	struct option longopts[MAX_OPTS];
	size_t n = 0;
	int c;

	for (size_t i = 0; i < N_SHARED; i++)
		if (shared_opts[i].flag & prog->common)
			longopts[n++] = shared_opts[i].opt;
	for (const struct option *o = prog->own; o && o->name; o++) {
		/* an own option must not shadow a shared one, --help or getopt's '?' */
		if (n >= MAX_OPTS - 2 || takes_shared(o->val) || o->val == 'h' || o->val == '?')
			abort();
		longopts[n++] = *o;
	}
	longopts[n++] = (struct option){ "help", no_argument, NULL, 'h' };
	longopts[n] = (struct option){ 0 };

	opterr = 0;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (c == 'h') {
			prog->usage(stdout);
			exit(0);
		}
		if (c == '?')
			usage_fail(prog->usage, "%s", bad_option(argc, argv, optopt, optind));
		if (takes_shared(c))
			shared_opt(c, optarg, co);
		else
			prog->own_opt(c, optarg);
	}
	if (optind < argc)
		usage_fail(prog->usage, "unexpected argument '%s'", argv[optind]);
}

void program_start(const struct program *p, struct common_opts *co, int argc, char **argv)
{
	prog = p;
	report_init(p->name);
	if (p->fault_handler)
		install_fault_handler();
	R.extra = p->extra;
	R.with_stages = p->stages;
	R.with_expected = p->expected;
	parse_args(co, argc, argv);
}
