/*
 * limits.h - the caps applied to attacker-controlled input (report mail is
 * attacker-controlled). Every stage receives the same struct; the config file
 * may override the defaults later. Exceeding any limit yields DW_E_LIMIT with
 * a message naming the limit, never a crash or an unbounded allocation.
 */
#ifndef DW_LIMITS_H
#define DW_LIMITS_H

#include <stddef.h>
#include <stdint.h>

struct dw_limits {
	uint64_t mail_max;          /* bytes of one whole message (64 MiB) */
	uint64_t decompressed_max;  /* bytes of decompressed data per report (512 MiB) */
	uint64_t ratio_max;         /* decompressed/compressed, checked ... (2000) */
	uint64_t ratio_grace;       /* ... once this many bytes came out (1 MiB) */
	unsigned zip_members_max;   /* entries in one zip archive (32) */
	unsigned rfc822_depth_max;  /* nesting of message/rfc822 parts (3) */
	uint64_t records_max;       /* <record> elements per report (20 M) */
	unsigned xml_depth_max;     /* element nesting (32) */
};

void dw_limits_default(struct dw_limits *l);
/* Set one limit from "name=value" (sizes take K/M/G/T suffixes, binary).
 * Returns DW_OK or DW_E_CONFIG with a message. */
int dw_limits_set(struct dw_limits *l, const char *kv, char *err, size_t errlen);

#endif
