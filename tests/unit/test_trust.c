/*
 * test_trust.c - judging report mail by its Authentication-Results fields
 * (src/trust.c): real fields from corpus mails and big providers, forged
 * fields below the trusted one, comments and quoted strings that hide
 * separators, DKIM alignment, and hostile input.
 */
#include "dw/mime.h"
#include "dw/trust.h"
#include "dw/util.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static char why[256];
static char *one_id[] = {"mx.example.com"};

/* Judge the fields given as arguments, topmost first, trusting ids. */
#define JUDGE(ids, from, req, ...)                                                                       \
	dw_trust_check((char *[]){__VA_ARGS__}, sizeof((char *[]){__VA_ARGS__}) / sizeof(char *), (from), (ids), \
	               sizeof(ids) / sizeof(ids[0]), (req), why, sizeof why)

#define DMARC(from, ...) JUDGE(one_id, from, DW_TRUST_DMARC, __VA_ARGS__)
#define DKIM(from, ...) JUDGE(one_id, from, DW_TRUST_DKIM, __VA_ARGS__)

static int
has(const char *s, const char *sub)
{
	return strstr(s, sub) != NULL;
}

static struct dw_mail *
load_mail(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		printf("Bail out! cannot open %s\n", path);
		exit(1);
	}
	static unsigned char buf[1 << 20];
	size_t n = fread(buf, 1, sizeof buf, f);
	fclose(f);
	struct dw_limits lim;
	dw_limits_default(&lim);
	struct dw_mail *m = NULL;
	char err[256];
	if (dw_mime_parse(buf, n, &lim, &m, err, sizeof err) != DW_OK) {
		printf("Bail out! %s: %s\n", path, err);
		exit(1);
	}
	return m;
}

static void
test_corpus_mails(void)
{
	/* twilight.eml: the top field (from relay-twl-01.twlnet.com) has only
	 * dkim=pass header.d=google.com; the dmarc=pass is in a second field of
	 * the same server further down, which does not count. */
	struct dw_mail *m = load_mail("tests/data/corpus/aggregate/parsedmarc/twilight.eml");
	char *twl[] = {"relay-twl-01.twlnet.com"};
	is_int(m->n_auth_results, 2, "twilight: two Authentication-Results fields");
	is_str(m->from_domain, "google.com", "twilight: From: domain");
	is_int(dw_trust_check(m->auth_results, m->n_auth_results, m->from_domain, twl, 1, DW_TRUST_DKIM, why,
	                      sizeof why),
	       1, "twilight: require dkim: trusted");
	is_str(why, "relay-twl-01.twlnet.com says dkim=pass for google.com", "twilight: dkim why");
	is_int(dw_trust_check(m->auth_results, m->n_auth_results, m->from_domain, twl, 1, DW_TRUST_DMARC, why,
	                      sizeof why),
	       0, "twilight: require dmarc: the top field has no dmarc result");
	is_str(why, "relay-twl-01.twlnet.com gives no dmarc result", "twilight: dmarc why");
	is_int(dw_trust_check(m->auth_results, m->n_auth_results, m->from_domain, twl, 1, DW_TRUST_NONE, why,
	                      sizeof why),
	       1, "twilight: require none");
	char *google[] = {"mx.google.com"};
	is_int(dw_trust_check(m->auth_results, m->n_auth_results, m->from_domain, google, 1, DW_TRUST_DKIM, why,
	                      sizeof why),
	       0, "twilight: not from mx.google.com");
	is_str(why, "no Authentication-Results from mx.google.com", "twilight: why names the id");
	dw_mail_free(m);

	/* folded-ar.eml: a folded trusted field on top, an ARC copy saying
	 * fail (not an A-R field) and a forged lower-case field further down. */
	m = load_mail("tests/data/mail/folded-ar.eml");
	char *exorg[] = {"mx.example.org"};
	is_int(dw_trust_check(m->auth_results, m->n_auth_results, m->from_domain, exorg, 1, DW_TRUST_DMARC, why,
	                      sizeof why),
	       1, "folded-ar: dmarc pass");
	is_int(dw_trust_check(m->auth_results, m->n_auth_results, m->from_domain, exorg, 1, DW_TRUST_DKIM, why,
	                      sizeof why),
	       1, "folded-ar: dkim pass");
	dw_mail_free(m);
}

static void
test_providers(void)
{
	char *gmail = "mx.google.com; dkim=pass header.i=@google.com header.s=20230601 header.b=abc; spf=pass "
	              "(google.com: domain of x designates 1.2.3.4 as permitted sender) smtp.mailfrom=x@google.com; "
	              "dmarc=pass (p=REJECT sp=REJECT dis=NONE) header.from=google.com";
	char *gid[] = {"mx.google.com"};
	is_int(JUDGE(gid, "google.com", DW_TRUST_DMARC, gmail), 1, "gmail: dmarc");
	is_str(why, "mx.google.com says dmarc=pass", "gmail: dmarc why");
	is_int(JUDGE(gid, "google.com", DW_TRUST_DKIM, gmail), 1, "gmail: dkim via header.i");
	is_int(JUDGE(gid, "mail.google.com", DW_TRUST_DKIM, gmail), 1, "gmail: dkim google.com covers mail.google.com");
	is_int(JUDGE(gid, "mail.google.com", DW_TRUST_DMARC, gmail), 0, "gmail: header.from is not the From: domain");
	ok(has(why, "header.from=google.com") && has(why, "mail.google.com"), "gmail: why names both: %s", why);
	is_int(JUDGE(gid, "google.com", DW_TRUST_DMARC, "mx.google.com;dmarc=pass header.b=ab+/cd== header.from=google.com"),
	       1, "base64 value with = and / in it");

	/* Exchange Online writes no authserv-id at all; such a field can never
	 * match a configured id. */
	char *ms = "spf=pass (sender IP is 1.2.3.4) smtp.mailfrom=contoso.com; dkim=pass (signature was verified) "
	           "header.d=contoso.com;dmarc=pass action=none header.from=contoso.com;compauth=pass reason=100";
	is_int(DMARC("contoso.com", ms), 0, "microsoft: no authserv-id, never trusted");
	is_str(why, "no Authentication-Results from mx.example.com", "microsoft: why");
	/* The same results behind an authserv-id parse fine. */
	char *ms2 = "mx.example.com; spf=pass (sender IP is 1.2.3.4) smtp.mailfrom=contoso.com; dkim=pass (signature "
	            "was verified) header.d=contoso.com;dmarc=pass action=none header.from=contoso.com;compauth=pass "
	            "reason=100";
	is_int(DMARC("contoso.com", ms2), 1, "microsoft style: dmarc");
	is_int(DKIM("contoso.com", ms2), 1, "microsoft style: dkim");
	is_int(DMARC("contoso.com", "mx.example.com; spf=fail (sender IP is 1.2.3.4) smtp.mailfrom=contoso.com;"
	                            "dkim=none (message not signed) header.d=none;dmarc=fail action=oreject "
	                            "header.from=contoso.com;compauth=fail reason=000"),
	       0, "microsoft style: dmarc=fail");
	is_str(why, "mx.example.com says dmarc=fail", "microsoft style: why");

	/* A real field from a LinkedIn failure report: a comment with ";". */
	char *li[] = {"mail516.prod.linkedin.com"};
	char *linkedin =
	    "mail516.prod.linkedin.com; iprev=pass policy.iprev=\"10.10.10.10\"; spf=neutral smtp.mailfrom=\"\" "
	    "smtp.helo=\"mail02.someserver.com\"; dkim=none (message not signed) header.d=none; tls=pass (verified) "
	    "key.ciphersuite=\"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384\" key.length=\"256\" tls.v=\"tlsv1.2\" "
	    "cert.client=\"OU=Domain Control Validated,CN=*.someserver.com\"; dmarc=fail (p=none; dis=none) "
	    "header.from=example.com";
	is_int(JUDGE(li, "example.com", DW_TRUST_DMARC, linkedin), 0, "linkedin: dmarc=fail");
	is_str(why, "mail516.prod.linkedin.com says dmarc=fail", "linkedin: why");
	is_int(JUDGE(li, "example.com", DW_TRUST_DKIM, linkedin), 0, "linkedin: dkim=none");
	is_str(why, "mail516.prod.linkedin.com says dkim=none", "linkedin: dkim why");
}

static void
test_forgery(void)
{
	char *good = "mx.example.com; dkim=pass header.d=example.com; dmarc=pass header.from=example.com";
	char *fail = "mx.example.com; dkim=fail header.d=example.com; dmarc=fail header.from=example.com";

	is_int(DMARC("example.com", good, "mx.example.com; dmarc=fail header.from=example.com"), 1,
	       "forged fail below the trusted pass is ignored");
	is_int(DMARC("example.com", fail, good), 0, "trusted fail above a forged pass: dmarc");
	is_str(why, "mx.example.com says dmarc=fail", "trusted fail: why");
	is_int(DKIM("example.com", fail, good), 0, "trusted fail above a forged pass: dkim");
	is_str(why, "mx.example.com says dkim=fail", "trusted fail: dkim why");
	is_int(DMARC("example.com", "mx.example.com; spf=pass smtp.mailfrom=example.com", good), 0,
	       "no dmarc in the trusted field: a pass below does not count");
	is_int(DMARC("example.com", "relay.example.net; dmarc=fail", good), 1,
	       "another server's field above ours is ignored");
	is_int(DMARC("example.com", "evil.example; dmarc=pass header.from=example.com",
	             "mx.example.com.evil; dmarc=pass header.from=example.com"),
	       0, "no trusted authserv-id at all");
	is_str(why, "no Authentication-Results from mx.example.com", "no trusted id: why");
	is_int(DMARC("example.com", NULL, good), 1, "NULL entries are skipped");

	char *none[1] = {NULL};
	is_int(dw_trust_check(none, 0, "example.com", one_id, 1, DW_TRUST_DMARC, why, sizeof why), 0, "no fields");
	is_str(why, "no Authentication-Results from mx.example.com", "no fields: why");
	is_int(dw_trust_check(none, 0, "example.com", one_id, 1, DW_TRUST_NONE, why, sizeof why), 1,
	       "require none: always trusted");
	char *g[] = {good};
	is_int(dw_trust_check(g, 1, "example.com", none, 0, DW_TRUST_DMARC, why, sizeof why), 0, "no ids configured");
	ok(has(why, "trust.authserv_id"), "no ids: why names the setting: %s", why);

	char *two[] = {"mx1.example.com", "MX.EXAMPLE.COM"};
	is_int(JUDGE(two, "example.com", DW_TRUST_DMARC, good), 1, "second of two ids, matched case-insensitively");
	is_int(JUDGE(two, "example.com", DW_TRUST_DMARC, "other.example; dmarc=pass"), 0, "two ids, none present");
	is_str(why, "no Authentication-Results from mx1.example.com or 1 other trusted authserv-id(s)", "two ids: why");
}

static void
test_syntax(void)
{
	is_int(DMARC("example.com", "mx.example.com 1; dmarc=pass header.from=example.com"), 1, "version after id");
	is_int(DMARC("example.com", "mx.example.com (our MX) 1 (v); dmarc=pass"), 1, "comments around the version");
	is_int(DMARC("example.com", "mx.example.com v1; dmarc=pass", "mx.example.com; dmarc=pass"), 0,
	       "unreadable trusted field: the one below does not count");
	ok(has(why, "mx.example.com") && has(why, "cannot be read"), "unreadable: why: %s", why);

	is_int(DMARC("example.com", "mx.example.com (a;b=c (nested; dmarc=pass) \\) still) ; dmarc=fail "
	                            "(x;dmarc=pass) header.from=example.com"),
	       0, "comments with ; = and parens hide nothing");
	is_str(why, "mx.example.com says dmarc=fail", "comments: why");
	is_int(DMARC("example.com", "mx.example.com; dmarc=pass (policy=\"x\"; dmarc=fail (\\(dmarc=fail\\))) "
	                            "header.from=example.com"),
	       1, "a fail inside a comment is not a result");
	is_int(DMARC("example.com", "mx.example.com; dmarc=pass (unclosed ((( header.from=example.com"), 0,
	       "unclosed comment: refused");
	is_int(DMARC("example.com", "mx.example.com; dmarc=pass header.from=\"example.com"), 0,
	       "unclosed quoted string: refused");
	is_int(DMARC("example.com", "mx.example.com; dmarc=pass ) header.from=example.com"), 0, "stray ): refused");

	is_int(DKIM("example.com", "mx.example.com; dkim=pass header.d=\"example.com\" header.i=\"@example.com\""), 1,
	       "quoted values");
	is_int(DMARC("example.com", "mx.example.com; dmarc=\"pass\" header.from=\"Example.COM.\""), 1,
	       "quoted result, upper case, trailing dot");
	is_int(DMARC("example.com", "mx.example.com; spf=pass smtp.mailfrom=\"a;dmarc=fail\"@example.com; dmarc=pass "
	                            "header.from=example.com"),
	       1, "a ; in a quoted local part does not split");
	is_int(DMARC("example.com", "mx.example.com; spf=pass smtp.mailfrom=\"x;dmarc=pass\"@evil.example; dmarc=fail"),
	       0, "a quoted pass is not a result");
	is_str(why, "mx.example.com says dmarc=fail", "quoted pass: why");

	is_int(DMARC("example.com", "mx.example.com; none"), 0, "none");
	is_str(why, "mx.example.com gives no dmarc result (says none)", "none: why");
	is_int(DKIM("example.com", "mx.example.com (comment) ; none (nothing checked)"), 0, "none with comments");
	is_int(DMARC("example.com", "mx.example.com"), 0, "authserv-id only");
	is_int(DMARC("example.com", "mx.example.com;"), 0, "authserv-id and ;");
	is_str(why, "mx.example.com gives no dmarc result", "empty: why");

	is_int(DMARC("example.com", "MX.EXAMPLE.COM; DMARC=PASS HEADER.FROM=EXAMPLE.COM"), 1, "upper case dmarc");
	is_int(DKIM("example.com", "Mx.Example.Com; DKIM/1=Pass Header.D=Example.Com"), 1, "upper case, method/version");
	is_int(DMARC("example.com", "mx.example.com; dmarc=pass; dmarc=fail"), 0, "two dmarc verdicts that disagree");
	is_int(DMARC("example.com", "mx.example.com; dmarc=pass header.from=example.com header.from=evil.example"), 0,
	       "a repeated property with another value is refused");
	is_int(DMARC(NULL, "mx.example.com; dmarc=pass header.from=example.com"), 1,
	       "dmarc pass without a From: domain to compare");
	is_int(DMARC("example.com", "mx.example.com; dmarc=pass header.from=example.com junk; dmarc=fail"), 0,
	       "a malformed result set is ignored, the next one read");
}

static void
test_dkim_alignment(void)
{
	char *r = "mx.example.com; dkim=pass header.d=evil.example; dmarc=pass header.from=example.com";
	is_int(DKIM("example.com", r), 0, "dkim pass for an unrelated domain");
	is_str(why, "mx.example.com says dkim=pass only for evil.example, which is not example.com or a parent of it",
	       "unrelated: why");
	is_int(DMARC("example.com", r), 1, "the same field under require dmarc");
	is_int(DKIM("reports.example.com", "mx.example.com; dkim=pass header.d=example.com"), 1, "parent domain");
	is_int(DKIM("example.com", "mx.example.com; dkim=pass header.d=reports.example.com"), 0,
	       "child domain does not cover the parent");
	is_int(DKIM("example.com", "mx.example.com; dkim=pass header.d=ample.com"), 0, "suffix that is not a label");
	is_int(DKIM("example.com", "mx.example.com; dkim=pass header.d=com"), 0, "a single label never aligns");
	is_int(DKIM("com", "mx.example.com; dkim=pass header.d=com"), 1, "exact single label");
	is_int(DKIM("example.com", "mx.example.com; dkim=pass header.d=.com"), 0, "leading dot");
	is_int(DKIM("example.com", "mx.example.com; dkim=pass header.i=dmarc@example.com"), 1, "header.i only");
	is_int(DKIM("example.com", "mx.example.com; dkim=pass header.i=\"a@b\"@example.com"), 1,
	       "header.i with a quoted local part");
	is_int(DKIM("example.com", "mx.example.com; dkim=pass header.d=evil.example header.i=@example.com"), 0,
	       "header.d wins over header.i");
	is_int(DKIM("example.com", "mx.example.com; dkim=pass header.s=sel"), 0, "no signing domain");
	is_int(DKIM("example.com", "mx.example.com; dkim=fail header.d=example.com; dkim=pass header.d=evil.example; "
	                           "dkim=pass header.d=EXAMPLE.com"),
	       1, "one aligned pass among other signatures");
	is_int(DKIM(NULL, "mx.example.com; dkim=pass header.d=example.com"), 0, "no From: domain");
	ok(has(why, "no From: domain"), "no From: domain: why: %s", why);
	is_int(DKIM("example.com", "mx.example.com; dmarc=pass"), 0, "no dkim result");
	is_str(why, "mx.example.com gives no dkim result", "no dkim: why");
}

static void
test_why_bounds(void)
{
	char longid[300];
	memset(longid, 'a', sizeof longid - 1);
	longid[sizeof longid - 1] = '\0';
	char *ids[] = {longid};
	char *f = xasprintf("%s; dmarc=fail", longid);
	is_int(JUDGE(ids, "example.com", DW_TRUST_DMARC, f), 0, "long authserv-id");
	ok(strlen(why) < 100 && has(why, "...") && has(why, "dmarc=fail"), "long id cut in why: %s", why);
	free(f);

	char *big = xmalloc(6000);
	strcpy(big, "mx.example.com; dmarc=");
	size_t n = strlen(big);
	memset(big + n, 'x', 5000);
	big[n + 5000] = '\0';
	is_int(DMARC("example.com", big), 0, "long result");
	ok(strlen(why) < 120 && has(why, "dmarc=xxx") && has(why, "..."), "long result cut: %zu bytes", strlen(why));
	free(big);

	is_int(DMARC("example.com", "mx.example.com; dmarc=fa\x01il\xff"), 0, "control bytes in result");
	is_str(why, "mx.example.com says dmarc=fa?il?", "control bytes replaced");

	char small[8];
	char *g[] = {"mx.example.com; dmarc=fail"};
	is_int(dw_trust_check(g, 1, "example.com", one_id, 1, DW_TRUST_DMARC, small, sizeof small), 0, "small why");
	is_str(small, "mx.exam", "small why is cut, terminated");
	is_int(dw_trust_check(g, 1, "example.com", one_id, 1, DW_TRUST_DMARC, NULL, 0), 0, "NULL why");
}

static void
test_hostile(void)
{
	const size_t len = 100 * 1024;
	char *buf = xmalloc(len + 64);
	clock_t t0 = clock();

	/* Unbalanced parens. */
	strcpy(buf, "mx.example.com; dmarc=pass ");
	size_t n = strlen(buf);
	memset(buf + n, '(', len);
	buf[n + len] = '\0';
	is_int(DMARC("example.com", buf), 0, "100 KiB of ( after a pass");
	memset(buf + n, ')', len);
	is_int(DMARC("example.com", buf), 0, "100 KiB of )");
	memset(buf + n, '"', len);
	is_int(DMARC("example.com", buf), 0, "100 KiB of quotes");
	memset(buf + n, ';', len);
	is_int(DMARC("example.com", buf), 1, "100 KiB of ; after a pass");
	memset(buf + n, '\\', len);
	is_int(DMARC("example.com", buf), 0, "100 KiB of backslashes");

	/* Garbage from a small alphabet without "d" (so no dmarc can appear),
	 * every separator included. */
	static const char alpha[] = "();=\"\\ \t.@/xmaE";
	uint32_t x = 12345;
	for (int round = 0; round < 20; round++) {
		strcpy(buf, "mx.example.com; ");
		n = strlen(buf);
		for (size_t i = 0; i < len; i++) {
			x = x * 1103515245u + 12345u;
			buf[n + i] = alpha[(x >> 16) % (sizeof alpha - 1)];
		}
		buf[n + len] = '\0';
		char *fields[] = {buf, buf + n, "mx.example.com; dmarc=pass"};
		if (dw_trust_check(fields, 3, "example.com", one_id, 1, DW_TRUST_DMARC, why, sizeof why) != 0 ||
		    dw_trust_check(fields + 1, 2, "example.com", one_id, 1, DW_TRUST_DKIM, why, sizeof why) != 0) {
			ok(0, "garbage round %d judged trusted", round);
			break;
		}
	}
	ok(1, "20 rounds of 100 KiB garbage: never trusted, no crash");

	/* A long but valid field. */
	buf[0] = '\0';
	strcpy(buf, "mx.example.com");
	n = strlen(buf);
	while (n + 40 < len) {
		memcpy(buf + n, "; dkim=pass header.d=example.com (c)", 36);
		n += 36;
	}
	buf[n] = '\0';
	is_int(DKIM("example.com", buf), 1, "100 KiB of valid result sets");

	double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
	ok(secs < 5.0, "hostile input took %.2f s", secs);
	free(buf);
}

int
main(void)
{
	test_corpus_mails();
	test_providers();
	test_forgery();
	test_syntax();
	test_dkim_alignment();
	test_why_bounds();
	test_hostile();
	return done_testing();
}
