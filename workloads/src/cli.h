/* SPDX-License-Identifier: MIT */
/*
 * pinrig guest workloads: program start-up and the shared command-line flags
 * (cli.c).
 *
 * Each program describes itself in a struct program: its name, usage text,
 * own JSON fields, which of the shared flags it takes (CLI_*) and its own
 * long options.  program_start() sets up the result object and parses argv:
 * the shared flags into a struct common_opts, the program's own ones through
 * its own_opt callback, in command-line order.  Long options only; --help
 * prints the usage on stdout and exits 0; any usage error prints the usage on
 * stderr, a JSON line with "error": "usage: ..." and exits 2.
 */
#ifndef PINRIG_CLI_H
#define PINRIG_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common.h"
#include "json.h"

/*
 * the shared flags; their getopt values (f r s S m d t H, --help h) are part of
 * the interface: a missing argument is reported as "option '-f'".  Own options
 * use other values.
 */
enum {
	CLI_FILE     = 1u << 0,  /* --file PATH */
	CLI_SRC      = 1u << 1,  /* --src PATH */
	CLI_SIZE     = 1u << 2,  /* --size BYTES: a positive multiple of 4096 up to 1G */
	CLI_SIZE_ANY = 1u << 3,  /* --size BYTES: any unsigned integer */
	CLI_SEED     = 1u << 4,  /* --seed N */
	CLI_MAP      = 1u << 5,  /* --map shared|private */
	CLI_DEVICE   = 1u << 6,  /* --device NAME */
	CLI_TIMEOUT  = 1u << 7,  /* --timeout SECONDS (1..3600) */
	CLI_HOLD     = 1u << 8,  /* --hold */
};

/* values of the shared flags; the program sets the defaults */
struct common_opts {
	const char *file;
	const char *src;
	uint64_t size;
	bool have_size;
	uint64_t seed;
	bool have_seed;
	bool shared;              /* --map shared (true) or private */
	const char *device;
	double timeout;
	bool hold;
};

/* the defaults the pinning programs document: 1M, seed 1, shared, 10 s */
#define COMMON_OPTS_DEFAULTS { .size = DEFAULT_SIZE, .seed = 1, .shared = true, .timeout = 10.0 }

struct program {
	const char *name;
	void (*usage)(FILE *f);
	void (*extra)(struct jbuf *j);     /* the program's own JSON fields, or NULL */
	bool fault_handler;                /* install_fault_handler() */
	bool stages;                       /* the JSON has "stages" */
	bool expected;                     /* the JSON has "expected" */
	unsigned common;                   /* CLI_* flags taken */
	const struct option *own;          /* own long options, { 0 }-terminated, or NULL */
	void (*own_opt)(int c, const char *arg);  /* called for each own option, in order */
};

/*
 * report_init(), the result object's shape, then argv: shared flags into *co,
 * own ones to p->own_opt; a stray argument is a usage error.  Returns when
 * argv parsed; the program's own cross-checks follow.
 */
void program_start(const struct program *p, struct common_opts *co, int argc, char **argv);

/* for own_opt: parse_u64(arg) within [lo, hi], else "FLAG must be LO..HI[UNIT]: 'ARG'" (exit 2) */
uint64_t cli_range(const char *flag, const char *arg, uint64_t lo, uint64_t hi, const char *unit);

/* "shared" or "private" */
const char *map_name(bool shared);

#endif /* PINRIG_CLI_H */
