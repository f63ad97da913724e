/*
 * slack.c - the `slack` notifier: Block Kit messages through an incoming
 * webhook, or through the Web API with a bot token (which can also upload
 * the digest's CSV). SPEC-NOTES §6.1-6.2.
 *
 *   notifiers:
 *     - name: team-slack          # incoming webhook: posts to the channel
 *       plugin: slack             #   the webhook was created for
 *       webhook_url: env:SLACK_WEBHOOK_URL     # or webhook_url_file: PATH
 *     - name: dmarc-bot           # bot token: chat.postMessage, and the
 *       plugin: slack             #   attachment through files.*External
 *       token_file: /etc/dmarcwatch/slack-token   # or token: env:NAME
 *       channel: C0123ABCDEF      # a channel ID (a #name works for
 *                                 #   posting; the file goes to the ID
 *                                 #   Slack answers with)
 *       # api_url: https://slack.com/api   (tests point it elsewhere)
 *       # ca_file: PATH, verify: true      (TLS, as every curl plugin)
 *
 * Outcomes: HTTP 2xx OK; 429 (Retry-After honoured), 408, 5xx and
 * transport errors/timeouts RETRY; other 4xx FAIL with Slack's error text.
 * Web API answers are HTTP 200 {"ok": false, "error": "..."}: FAIL with the
 * error, except ratelimited and Slack's own internal errors (RETRY).
 *
 * Bot mode, with an attachment: the message is posted, then the file is
 * uploaded into the message's thread (getUploadURLExternal, POST of the raw
 * bytes to the upload_url Slack returns, completeUploadExternal; never the
 * retired files.upload). If the upload fails after the message went out,
 * the instance remembers the posted message under the notification's
 * idempotency key, so the retry uploads the file without posting the
 * message a second time.
 *
 * The webhook URL and the token are secrets: resolved by host->secret(),
 * kept only in the instance, never logged and never put into err (curl's
 * messages name hosts, not URLs; pu_http_outcome writes no URLs).
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "plugutil.h"
#include "pu_curl.h"
#include "slack_msg.h"

#define SLACK_API_DEFAULT "https://slack.com/api"
#define RESP_MAX (256 * 1024)
#define ERR_TEXT_MAX 100 /* Slack's error codes are short; bound what we quote */

struct slack {
	const struct dw_host *host; /* borrowed until shutdown */
	int bot;                    /* 0: incoming webhook, 1: Web API with a bot token */
	char *webhook_url;          /* secret (webhook mode) */
	char *token;                /* secret (bot mode) */
	char *channel;              /* bot mode: where chat.postMessage posts */
	char *api_url;              /* bot mode: no trailing slash */
	const char *upload_protocols; /* what an upload_url from Slack may use */
	struct pu_tls tls;          /* ca_file borrowed from cfg */
	/* Bot mode: the message of this notification was posted but its
	 * attachment is not uploaded yet (the retry skips chat.postMessage). */
	char *posted_key, *posted_channel, *posted_ts;
	char errbuf[CURL_ERROR_SIZE];
};

static const char *const known_keys[] = {"webhook_url", "webhook_url_file", "token", "token_file", "channel",
                                         "api_url", "ca_file", "verify", NULL};

/* ------------------------------------------------------------------ */
/* Configuration                                                       */

static const struct dw_kv *
secret_kv(const struct dw_kv *cfg, size_t n, const char *key)
{
	char file_key[64];
	snprintf(file_key, sizeof file_key, "%s_file", key);
	const struct dw_kv *kv = pu_kv(cfg, n, key);
	return kv != NULL ? kv : pu_kv(cfg, n, file_key);
}

/*
 * Check an http(s) URL: 0 when usable, else -1 with the reason in why.
 * Plain http is accepted only to the local host (tests): the URL or the
 * token sent along is a secret. Never quotes the URL.
 */
static int
check_url(const char *url, char *why, size_t whylen)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL;
	int rc = -1;
	if (u == NULL) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		snprintf(why, whylen, "not a valid URL (expected https://HOST/PATH)");
	} else if (strcmp(scheme, "https") == 0) {
		rc = 0;
	} else if (strcmp(scheme, "http") == 0 &&
	           (strcmp(host, "127.0.0.1") == 0 || strcmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0)) {
		rc = 0;
	} else {
		snprintf(why, whylen, "must be an https:// URL (plain http only to 127.0.0.1 or localhost, for tests)");
	}
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return rc;
}

static int
printable(const char *s)
{
	for (; *s != '\0'; s++)
		if (*s <= 0x20 || *s >= 0x7F)
			return 0;
	return 1;
}

static void
slack_free(struct slack *s)
{
	if (s == NULL)
		return;
	pu_secret_free(s->webhook_url);
	pu_secret_free(s->token);
	free(s->channel);
	free(s->api_url);
	free(s->posted_key);
	free(s->posted_channel);
	free(s->posted_ts);
	free(s);
}

static int
configure(struct slack *s, const struct dw_host *host, const struct dw_kv *cfg, size_t n, char *err, size_t errlen)
{
	int rc = 0, have_url, have_token;
	char why[160];

	if (pu_check_keys(host, cfg, n, known_keys) != 0)
		rc = -1;
	for (const char *const *k = known_keys; *k != NULL; k++)
		if (pu_single(host, cfg, n, *k) != 0)
			rc = -1;
	if (pu_tls_config(host, cfg, n, &s->tls) != 0)
		rc = -1;
	/* Report every problem, not just the first: carry on after an error
	 * (-1 from secret() means the key is there but unusable). */
	if ((have_url = host->secret(host, "webhook_url", &s->webhook_url)) < 0)
		rc = -1;
	if ((have_token = host->secret(host, "token", &s->token)) < 0)
		rc = -1;

	const struct dw_kv *channel = pu_kv(cfg, n, "channel"), *api = pu_kv(cfg, n, "api_url");
	if (have_url && have_token) {
		host->config_error(host, secret_kv(cfg, n, "token"),
		                   "give either webhook_url (incoming webhook) or token and channel (bot), not both");
		return -1;
	}
	if (!have_url && !have_token) {
		host->config_error(host, NULL,
		                   "no destination: set webhook_url (webhook_url: env:NAME or webhook_url_file: PATH) "
		                   "for an incoming webhook, or token (env:NAME or token_file: PATH) and channel for a "
		                   "bot");
		return -1;
	}
	if (have_url) {
		if (s->webhook_url != NULL && check_url(s->webhook_url, why, sizeof why) != 0) {
			host->config_error(host, secret_kv(cfg, n, "webhook_url"), "%s", why);
			rc = -1;
		}
		if (channel != NULL) {
			host->config_error(host, channel,
			                   "an incoming webhook always posts to the channel it was created for; remove "
			                   "channel, or use token and channel (bot mode) instead of webhook_url");
			rc = -1;
		}
		if (api != NULL) {
			host->config_error(host, api, "only used with token (bot mode); remove it");
			rc = -1;
		}
		return rc;
	}

	s->bot = 1;
	if (s->token != NULL && (!printable(s->token) || s->token[0] == '\0')) {
		host->config_error(host, secret_kv(cfg, n, "token"),
		                   "the token contains spaces or control characters; expected a bot token (xoxb-...)");
		rc = -1;
	}
	if (channel == NULL) {
		host->config_error(host, NULL, "token is set but channel is missing: add channel: C0123ABCDEF (the "
		                               "channel's ID, shown in its details in Slack)");
		rc = -1;
	} else if (channel->value[0] == '\0' || !printable(channel->value)) {
		host->config_error(host, channel, "expected a channel ID such as C0123ABCDEF");
		rc = -1;
	} else if ((s->channel = strdup(channel->value)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	const char *api_url = api != NULL ? api->value : SLACK_API_DEFAULT;
	if (check_url(api_url, why, sizeof why) != 0) {
		host->config_error(host, api, "%s", why);
		rc = -1;
	} else {
		if ((s->api_url = strdup(api_url)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		size_t len = strlen(s->api_url);
		while (len > 0 && s->api_url[len - 1] == '/')
			s->api_url[--len] = '\0';
		/* Slack's upload_url is https; a test api_url on http gets an http one. */
		s->upload_protocols = strncmp(s->api_url, "http://", 7) == 0 ? "http,https" : "https";
	}
	return rc;
}

static int
slack_init(const struct dw_host *host, const struct dw_kv *cfg, size_t ncfg, void **state, char *err, size_t errlen)
{
	struct slack *s = calloc(1, sizeof *s);
	if (s == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	s->host = host;
	if (configure(s, host, cfg, ncfg, err, errlen) != 0) {
		slack_free(s);
		return -1;
	}
	/* Paired with curl_global_cleanup() in shutdown (curl counts them). */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(err, errlen, "libcurl initialisation failed (out of memory or TLS library problem)");
		slack_free(s);
		return -1;
	}
	host->log(host, DW_LOG_DEBUG, "slack: %s", s->bot ? "bot mode (Web API)" : "incoming webhook mode");
	*state = s;
	return 0;
}

static void
slack_shutdown(void *state)
{
	slack_free(state);
	curl_global_cleanup();
}

/* ------------------------------------------------------------------ */
/* HTTP                                                                */

struct req {
	const char *what;         /* "Slack chat.postMessage": names the step in err */
	const char *url;          /* may be secret: never logged */
	const char *protocols;    /* "http,https" or "https" */
	const char *content_type;
	const char *body;
	size_t len;
	int auth;                 /* send the bot token */
};

/* One POST. The answer goes to resp; the result is pu_http_outcome's. */
static int
post(struct slack *s, CURL *h, int64_t deadline, const struct req *r, struct pu_buf *resp, unsigned *retry_after,
     char *err, size_t errlen)
{
	int64_t left = deadline - pu_mono_ms();
	if (left <= 0) {
		snprintf(err, errlen, "%s: not attempted: the notifier's timeout (%u ms) was used up by the steps before",
		         r->what, s->host->timeout_ms);
		return DW_NOTIFY_RETRY;
	}
	char ctype[160];
	snprintf(ctype, sizeof ctype, "Content-Type: %s", r->content_type);
	struct curl_slist *hdrs = curl_slist_append(NULL, ctype), *h2 = NULL;
	if (hdrs != NULL && (h2 = curl_slist_append(hdrs, "Expect:")) != NULL)
		hdrs = h2;
	curl_easy_reset(h);
	if (h2 == NULL || pu_curl_setup(h, s->host, &s->tls, r->protocols, s->errbuf) != 0 ||
	    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)left) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_URL, r->url) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->len) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, pu_curl_write) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_WRITEDATA, resp) != CURLE_OK ||
	    (r->auth && (curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER) != CURLE_OK ||
	                 curl_easy_setopt(h, CURLOPT_XOAUTH2_BEARER, s->token) != CURLE_OK))) {
		curl_slist_free_all(hdrs);
		snprintf(err, errlen, "%s: cannot set up the request (out of memory, or libcurl lacks a feature)", r->what);
		return DW_NOTIFY_RETRY;
	}
	CURLcode rc = curl_easy_perform(h);
	curl_slist_free_all(hdrs);
	/* Keep the token out of the handle once the request is done. */
	if (r->auth)
		curl_easy_setopt(h, CURLOPT_XOAUTH2_BEARER, NULL);
	return pu_http_outcome(h, rc, s->errbuf, resp, r->what, retry_after, err, errlen);
}

/* Append ": hint" (what to do) to err when there is room. */
static void
add_hint(char *err, size_t errlen, const char *hint)
{
	size_t len = strlen(err);
	if (hint != NULL && len < errlen)
		snprintf(err + len, errlen - len, ": %s", hint);
}

static const struct {
	const char *error;
	const char *hint;
} hints[] = {
	{"no_service", "the webhook was removed or the URL is wrong: create a new incoming webhook and update webhook_url"},
	{"no_service_id", "the webhook URL is incomplete: copy it again from the Slack app's settings"},
	{"no_team", "the webhook's workspace is gone: create a new incoming webhook"},
	{"team_disabled", "the workspace is disabled"},
	{"no_active_hooks", "the webhook was disabled: re-enable it or create a new one"},
	{"invalid_token", "the webhook URL is no longer valid: create a new incoming webhook"},
	{"action_prohibited", "a workspace admin restricted posting to this channel"},
	{"posting_to_general_channel_denied", "only admins may post to this channel: pick another one"},
	{"channel_is_archived", "the channel is archived: unarchive it or pick another one"},
	{"is_archived", "the channel is archived: unarchive it or pick another one"},
	{"channel_not_found", "check channel (use the channel ID, e.g. C0123ABCDEF) and that the bot can see it"},
	{"not_in_channel", "invite the bot to the channel: /invite @your-bot"},
	{"invalid_auth", "check token: it should be the app's bot token (xoxb-...)"},
	{"not_authed", "check token: it should be the app's bot token (xoxb-...)"},
	{"token_revoked", "the token was revoked: reinstall the Slack app and update token"},
	{"token_expired", "the token expired: reinstall the Slack app and update token"},
	{"account_inactive", "the bot's account is deactivated: reinstall the Slack app"},
	{"missing_scope", "add the scope to the Slack app (chat:write, files:write) and reinstall it"},
	{"invalid_payload", "Slack refused the message: please report this dmarcwatch bug"},
	{"invalid_blocks", "Slack refused the message: please report this dmarcwatch bug"},
	{"msg_blocks_too_long", "Slack refused the message size: please report this dmarcwatch bug"},
};

static const char *
hint_for(const char *error)
{
	for (size_t i = 0; i < sizeof hints / sizeof hints[0]; i++)
		if (strcmp(hints[i].error, error) == 0)
			return hints[i].hint;
	return NULL;
}

/* Slack's error code from a webhook's plain-text answer ("no_service"). */
static void
webhook_hint(const struct pu_buf *resp, char *err, size_t errlen)
{
	char code[64];
	size_t i = 0;
	for (; resp->p != NULL && i < resp->len && i + 1 < sizeof code && (islower((unsigned char)resp->p[i]) ||
	                                                                   resp->p[i] == '_'); i++)
		code[i] = resp->p[i];
	code[i] = '\0';
	add_hint(err, errlen, hint_for(code));
}

/*
 * Check a Web API answer after post(): HTTP-level failures stand; a 2xx
 * must be JSON with "ok". On OK *out holds the parsed answer (decref it).
 */
static int
api_result(CURL *h, int outcome, const struct pu_buf *resp, const char *what, json_t **out,
           unsigned *retry_after, char *err, size_t errlen)
{
	*out = NULL;
	json_t *j = resp->p != NULL ? json_loadb(resp->p, resp->len, 0, NULL) : NULL;
	if (outcome != DW_NOTIFY_OK) {
		const char *e = json_string_value(json_object_get(j, "error"));
		if (e != NULL) /* err already quotes the body; add the advice */
			add_hint(err, errlen, hint_for(e));
		json_decref(j);
		return outcome;
	}
	json_t *ok = json_object_get(j, "ok");
	if (!json_is_boolean(ok)) {
		snprintf(err, errlen, "%s: the answer is not from the Slack Web API (no \"ok\"): check api_url", what);
		json_decref(j);
		return DW_NOTIFY_FAIL;
	}
	if (json_is_true(ok)) {
		*out = j;
		return DW_NOTIFY_OK;
	}
	char code[ERR_TEXT_MAX + 1];
	const char *e = json_string_value(json_object_get(j, "error"));
	size_t i = 0;
	for (; e != NULL && e[i] != '\0' && i < ERR_TEXT_MAX; i++)
		code[i] = e[i] > 0x20 && e[i] < 0x7F ? e[i] : '?';
	code[i] = '\0';
	if (i == 0)
		snprintf(code, sizeof code, "unknown error");
	const char *needed = json_string_value(json_object_get(j, "needed"));
	char need[96] = "";
	if (needed != NULL && printable(needed) && strlen(needed) < 64)
		snprintf(need, sizeof need, " (needed: %s)", needed);
	snprintf(err, errlen, "%s: %s%s", what, code, need);
	json_decref(j);
	if (strcmp(code, "ratelimited") == 0 || strcmp(code, "internal_error") == 0 || strcmp(code, "fatal_error") == 0 ||
	    strcmp(code, "service_unavailable") == 0 || strcmp(code, "request_timeout") == 0) {
		curl_off_t ra = 0;
		if (curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
			*retry_after = ra > 86400 ? 86400U : (unsigned)ra;
		return DW_NOTIFY_RETRY;
	}
	add_hint(err, errlen, hint_for(code));
	return DW_NOTIFY_FAIL;
}

/* POST to the Web API method; on OK *out holds the answer. */
static int
api_call(struct slack *s, CURL *h, int64_t deadline, const char *method, const char *content_type,
         const char *body, size_t len, json_t **out, unsigned *retry_after, char *err, size_t errlen)
{
	size_t ulen = strlen(s->api_url) + strlen(method) + 2;
	char what[64], *url = malloc(ulen);
	struct pu_buf resp = {.max = RESP_MAX};
	if (url == NULL) {
		snprintf(err, errlen, "Slack %s: out of memory", method);
		return DW_NOTIFY_RETRY;
	}
	snprintf(url, ulen, "%s/%s", s->api_url, method);
	snprintf(what, sizeof what, "Slack %s", method);
	struct req r = {.what = what, .url = url, .protocols = "http,https", .content_type = content_type,
	                .body = body, .len = len, .auth = 1};
	int rc = post(s, h, deadline, &r, &resp, retry_after, err, errlen);
	rc = api_result(h, rc, &resp, what, out, retry_after, err, errlen);
	pu_buf_free(&resp);
	free(url);
	return rc;
}

/* "k1=v1&k2=v2" from NULL-terminated pairs (values URL-encoded); NULL on OOM. */
static char *
form(CURL *h, const char *const *kv)
{
	struct pu_buf b = {.max = (size_t)64 << 20};
	for (size_t i = 0; kv[i] != NULL; i += 2) {
		char *v = curl_easy_escape(h, kv[i + 1], 0);
		if (v == NULL || (i > 0 && pu_buf_add(&b, "&", 1) != 0) || pu_buf_add(&b, kv[i], strlen(kv[i])) != 0 ||
		    pu_buf_add(&b, "=", 1) != 0 || pu_buf_add(&b, v, strlen(v)) != 0) {
			curl_free(v);
			pu_buf_free(&b);
			return NULL;
		}
		curl_free(v);
	}
	return b.p;
}

static const char *
jstr(const json_t *j, const char *key)
{
	return json_string_value(json_object_get(j, key));
}

/* ------------------------------------------------------------------ */
/* Delivery                                                            */

static int
webhook_notify(struct slack *s, CURL *h, int64_t deadline, const struct dw_notification *n, unsigned *retry_after,
               char *err, size_t errlen)
{
	json_t *msg = slack_message(n, SLACK_ATTACH_UNAVAILABLE, s->host->agent_version);
	char *body = msg != NULL ? json_dumps(msg, JSON_COMPACT) : NULL;
	json_decref(msg);
	if (body == NULL) {
		snprintf(err, errlen, "Slack webhook: out of memory while building the message");
		return DW_NOTIFY_RETRY;
	}
	struct pu_buf resp = {.max = RESP_MAX};
	struct req r = {.what = "Slack webhook", .url = s->webhook_url, .protocols = "http,https",
	                .content_type = "application/json; charset=utf-8", .body = body, .len = strlen(body)};
	int rc = post(s, h, deadline, &r, &resp, retry_after, err, errlen);
	if (rc != DW_NOTIFY_OK)
		webhook_hint(&resp, err, errlen);
	else
		s->host->log(s->host, DW_LOG_DEBUG, "webhook: posted (%zu bytes)", r.len);
	pu_buf_free(&resp);
	free(body);
	return rc;
}

static int
post_message(struct slack *s, CURL *h, int64_t deadline, const struct dw_notification *n, json_t **answer,
             unsigned *retry_after, char *err, size_t errlen)
{
	json_t *msg = slack_message(n, SLACK_ATTACH_IN_THREAD, s->host->agent_version);
	char *body = NULL;
	if (msg != NULL && json_object_set_new(msg, "channel", json_string(s->channel)) == 0)
		body = json_dumps(msg, JSON_COMPACT);
	json_decref(msg);
	if (body == NULL) {
		snprintf(err, errlen, "Slack chat.postMessage: out of memory while building the message");
		return DW_NOTIFY_RETRY;
	}
	int rc = api_call(s, h, deadline, "chat.postMessage", "application/json; charset=utf-8", body, strlen(body),
	                  answer, retry_after, err, errlen);
	free(body);
	return rc;
}

/* getUploadURLExternal, the bytes to upload_url, completeUploadExternal. */
static int
upload(struct slack *s, CURL *h, int64_t deadline, const struct dw_attachment *a, const char *channel,
       const char *thread_ts, unsigned *retry_after, char *err, size_t errlen)
{
	const char *filename = a->filename != NULL && a->filename[0] != '\0' ? a->filename : "dmarcwatch-attachment";
	char length[32], *body = NULL, *url = NULL, *file_id = NULL, *files = NULL;
	json_t *ans = NULL, *list = NULL;
	int rc = DW_NOTIFY_RETRY;

	snprintf(length, sizeof length, "%zu", a->size);
	const char *get_kv[] = {"filename", filename, "length", length, NULL};
	if ((body = form(h, get_kv)) == NULL)
		goto oom;
	rc = api_call(s, h, deadline, "files.getUploadURLExternal", "application/x-www-form-urlencoded", body,
	              strlen(body), &ans, retry_after, err, errlen);
	if (rc != DW_NOTIFY_OK)
		goto out;
	if (jstr(ans, "upload_url") == NULL || jstr(ans, "file_id") == NULL) {
		snprintf(err, errlen, "Slack files.getUploadURLExternal: the answer lacks upload_url or file_id");
		rc = DW_NOTIFY_FAIL;
		goto out;
	}
	if ((url = strdup(jstr(ans, "upload_url"))) == NULL || (file_id = strdup(jstr(ans, "file_id"))) == NULL)
		goto oom;

	/* The upload_url is short-lived and needs no token: send none. */
	char ctype[128] = "application/octet-stream";
	if (a->media_type != NULL && printable(a->media_type) && strlen(a->media_type) < sizeof ctype)
		snprintf(ctype, sizeof ctype, "%s", a->media_type);
	struct pu_buf resp = {.max = RESP_MAX};
	struct req r = {.what = "Slack file upload", .url = url, .protocols = s->upload_protocols,
	                .content_type = ctype, .body = (const char *)a->data, .len = a->size};
	rc = post(s, h, deadline, &r, &resp, retry_after, err, errlen);
	pu_buf_free(&resp);
	if (rc != DW_NOTIFY_OK)
		goto out;

	list = json_pack("[{s:s, s:s}]", "id", file_id, "title", filename);
	if (list == NULL || (files = json_dumps(list, JSON_COMPACT)) == NULL)
		goto oom;
	const char *done_kv[] = {"files", files, "channel_id", channel,
	                         thread_ts != NULL ? "thread_ts" : NULL, thread_ts, NULL};
	free(body);
	if ((body = form(h, done_kv)) == NULL)
		goto oom;
	json_decref(ans);
	ans = NULL;
	rc = api_call(s, h, deadline, "files.completeUploadExternal", "application/x-www-form-urlencoded", body,
	              strlen(body), &ans, retry_after, err, errlen);
	if (rc == DW_NOTIFY_OK)
		s->host->log(s->host, DW_LOG_DEBUG, "uploaded the attachment (%zu bytes) as %s to %s", a->size, file_id,
		             channel);
	goto out;
oom:
	snprintf(err, errlen, "Slack file upload: out of memory");
	rc = DW_NOTIFY_RETRY;
out:
	json_decref(ans);
	json_decref(list);
	free(files);
	free(file_id);
	free(url);
	free(body);
	return rc;
}

static void
forget_posted(struct slack *s)
{
	free(s->posted_key);
	free(s->posted_channel);
	free(s->posted_ts);
	s->posted_key = s->posted_channel = s->posted_ts = NULL;
}

static int
bot_notify(struct slack *s, CURL *h, int64_t deadline, const struct dw_notification *n, unsigned *retry_after,
           char *err, size_t errlen)
{
	const struct dw_attachment *a = n->attachment != NULL && n->attachment->size > 0 ? n->attachment : NULL;
	int rc;

	if (s->posted_key == NULL || strcmp(s->posted_key, n->idempotency_key) != 0) {
		json_t *ans = NULL;
		forget_posted(s);
		rc = post_message(s, h, deadline, n, &ans, retry_after, err, errlen);
		if (rc != DW_NOTIFY_OK)
			return rc;
		/* Slack answers with the channel's ID (also when channel is a
		 * #name) and the message's ts: the file goes into its thread. */
		const char *ch = jstr(ans, "channel") != NULL ? jstr(ans, "channel") : s->channel;
		const char *ts = jstr(ans, "ts");
		s->host->log(s->host, DW_LOG_DEBUG, "chat.postMessage: posted to %s (ts %s)", ch, ts != NULL ? ts : "?");
		if (a != NULL) {
			s->posted_key = strdup(n->idempotency_key);
			s->posted_channel = strdup(ch);
			s->posted_ts = ts != NULL ? strdup(ts) : NULL;
			if (s->posted_key == NULL || s->posted_channel == NULL || (ts != NULL && s->posted_ts == NULL))
				forget_posted(s); /* out of memory: a retry would post again; no worse */
		}
		json_decref(ans);
		if (a == NULL)
			return DW_NOTIFY_OK;
		if (s->posted_key == NULL) {
			snprintf(err, errlen, "Slack file upload: out of memory after posting the message");
			return DW_NOTIFY_RETRY;
		}
	} else {
		s->host->log(s->host, DW_LOG_INFO,
		             "the message was posted by an earlier attempt; uploading only the attachment");
	}
	if (a == NULL) {
		forget_posted(s);
		return DW_NOTIFY_OK;
	}

	char e2[512];
	e2[0] = '\0';
	rc = upload(s, h, deadline, a, s->posted_channel, s->posted_ts, retry_after, e2, sizeof e2);
	if (rc == DW_NOTIFY_OK) {
		forget_posted(s);
		return rc;
	}
	if (rc == DW_NOTIFY_FAIL)
		forget_posted(s);
	snprintf(err, errlen, "the message was posted but the attachment was not uploaded%s: %s",
	         rc == DW_NOTIFY_RETRY ? " (the retry uploads only the file)" : "", e2);
	return rc;
}

static int
slack_notify(void *state, const struct dw_notification *n, unsigned *retry_after, char *err, size_t errlen)
{
	struct slack *s = state;
	int64_t deadline = pu_mono_ms() + (s->host->timeout_ms > 0 ? (int64_t)s->host->timeout_ms : 30000);
	CURL *h = curl_easy_init();
	if (h == NULL) {
		snprintf(err, errlen, "cannot create a libcurl handle (out of memory?)");
		return DW_NOTIFY_RETRY;
	}
	int rc = s->bot ? bot_notify(s, h, deadline, n, retry_after, err, errlen)
	                : webhook_notify(s, h, deadline, n, retry_after, err, errlen);
	curl_easy_cleanup(h);
	return rc;
}

DW_NOTIFIER_EXPORT const struct dw_notifier dw_notifier_entry = DW_NOTIFIER_INIT(
	.name = "slack", .version = "1.0",
	.description = "Slack: Block Kit messages by incoming webhook or bot token (with file upload)",
	.init = slack_init, .notify = slack_notify, .shutdown = slack_shutdown);
