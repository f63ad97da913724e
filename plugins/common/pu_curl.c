/*
 * pu_curl.c - one libcurl setup and one HTTP outcome mapping for the
 * bundled plugins.
 */
#include <stdio.h>
#include <string.h>

#include "pu_curl.h"

int
pu_curl_setup(CURL *h, const struct dw_host *host, const struct pu_tls *tls, const char *protocols,
              char *errbuf)
{
	char ua[64];
	long timeout = host->timeout_ms > 0 ? (long)host->timeout_ms : 30000L;
	long connect = timeout < 10000L ? timeout : 10000L;
	snprintf(ua, sizeof ua, "dmarcwatch/%s", host->agent_version != NULL ? host->agent_version : "0");
	errbuf[0] = '\0';
	int bad = 0;
	bad |= curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, connect) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, protocols) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_USERAGENT, ua) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, tls->verify ? 1L : 0L) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, tls->verify ? 2L : 0L) != CURLE_OK;
	if (tls->ca_file != NULL)
		bad |= curl_easy_setopt(h, CURLOPT_CAINFO, tls->ca_file) != CURLE_OK;
	return bad ? -1 : 0;
}

size_t
pu_curl_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct pu_buf *b = userdata;
	size_t n = size * nmemb;
	if (pu_buf_add(b, ptr, n) != 0)
		return 0; /* out of memory: abort the transfer */
	return n;
}

/* The first line of the body, printable ASCII only, at most 200 bytes. */
static void
first_line(const struct pu_buf *body, char *out, size_t outlen)
{
	size_t o = 0;
	for (size_t i = 0; body != NULL && body->p != NULL && i < body->len && o + 1 < outlen && o < 200; i++) {
		unsigned char c = (unsigned char)body->p[i];
		if (c == '\n' || c == '\r')
			break;
		out[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	out[o] = '\0';
}

/* curl errors that trying again cannot mend: the operator must act. */
static int
permanent_curl_error(CURLcode rc)
{
	switch (rc) {
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
	case CURLE_LOGIN_DENIED:
	case CURLE_USE_SSL_FAILED:
		return 1;
	default:
		return 0;
	}
}

int
pu_http_outcome(CURL *h, CURLcode rc, const char *errbuf, const struct pu_buf *body, const char *what,
                unsigned *retry_after, char *err, size_t errlen)
{
	if (rc != CURLE_OK) {
		const char *detail = errbuf != NULL && errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc);
		if (permanent_curl_error(rc)) {
			snprintf(err, errlen, "%s: %s (fix the configuration or the server; not retried)", what, detail);
			return DW_NOTIFY_FAIL;
		}
		snprintf(err, errlen, "%s: %s", what, detail);
		return DW_NOTIFY_RETRY;
	}
	long status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (status >= 200 && status < 300)
		return DW_NOTIFY_OK;
	char line[256];
	first_line(body, line, sizeof line);
	snprintf(err, errlen, "%s: HTTP %ld%s%s", what, status, line[0] != '\0' ? ": " : "", line);
	if (status == 429 || status == 408 || status == 425 || status >= 500) {
		curl_off_t ra = 0;
		if (curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
			*retry_after = ra > 86400 ? 86400U : (unsigned)ra;
		return DW_NOTIFY_RETRY;
	}
	return DW_NOTIFY_FAIL;
}

int
pu_smtp_outcome(CURL *h, CURLcode rc, const char *errbuf, const char *cmd, const char *reply, const char *what,
                char *err, size_t errlen)
{
	if (rc == CURLE_OK)
		return DW_NOTIFY_OK;
	const char *detail = errbuf != NULL && errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc);
	int said = reply != NULL && reply[0] != '\0';
	long code = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	if (rc == CURLE_LOGIN_DENIED) {
		if (code / 100 == 4) {
			snprintf(err, errlen, "%s: login failed for now%s%s", what, said ? ": " : "", said ? reply : "");
			return DW_NOTIFY_RETRY;
		}
		snprintf(err, errlen, "%s: login refused%s%s (check username and password; not retried)", what,
		         said ? ": " : "", said ? reply : "");
		return DW_NOTIFY_FAIL;
	}
	if (said && code >= 400 && code < 600) {
		const char *step = cmd != NULL ? cmd : "the connection";
		if (code >= 500) {
			snprintf(err, errlen, "%s: the server refused %s: %s (permanent; not retried)", what, step, reply);
			return DW_NOTIFY_FAIL;
		}
		snprintf(err, errlen, "%s: the server refused %s for now: %s", what, step, reply);
		return DW_NOTIFY_RETRY;
	}
	if (rc == CURLE_USE_SSL_FAILED) {
		snprintf(err, errlen,
		         "%s: the server does not offer STARTTLS, which this notifier requires (use a server "
		         "that does, or smtps://; not retried)",
		         what);
		return DW_NOTIFY_FAIL;
	}
	if (rc == CURLE_PEER_FAILED_VERIFICATION) {
		snprintf(err, errlen,
		         "%s: %s (the server's certificate is not trusted: set ca_file to the CA that signed it, "
		         "or fix the server; not retried)",
		         what, detail);
		return DW_NOTIFY_FAIL;
	}
	if (permanent_curl_error(rc)) {
		snprintf(err, errlen, "%s: %s (fix the configuration or the server; not retried)", what, detail);
		return DW_NOTIFY_FAIL;
	}
	snprintf(err, errlen, "%s: %s", what, detail);
	return DW_NOTIFY_RETRY;
}

int
pu_curl_header(struct curl_slist **l, const char *line)
{
	struct curl_slist *n = curl_slist_append(*l, line);
	if (n == NULL)
		return -1;
	*l = n;
	return 0;
}
