/*
 * imapfloor.c - the IMAP benchmark's floor: the least work any libetpan
 * client must do to read a whole folder. It logs in (plain text, no TLS),
 * selects FOLDER and sends one `UID FETCH 1:* (BODY.PEEK[])`, then counts
 * the messages and body bytes it got. Nothing is parsed, stored or moved,
 * and BODY.PEEK leaves the \Seen flags alone, so the folder is unchanged
 * and the same seeded folder can be read again. bench/imap.sh compares the
 * time `dmarcwatch run --once` needs for the same folder with this one.
 *
 * Usage: imapfloor HOST PORT USER PASSFILE FOLDER
 * Prints "MESSAGES BYTES" on stdout; exit 1 on any error (the reason on
 * stderr), 2 on a usage error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libetpan/libetpan.h>

/* The password is the first line of PASSFILE, as password_file is for
 * dmarcwatch; it never appears on a command line. */
static int
read_pass(const char *path, char *buf, size_t buflen)
{
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		perror(path);
		return -1;
	}
	if (fgets(buf, (int)buflen, f) == NULL) {
		fprintf(stderr, "imapfloor: %s is empty\n", path);
		fclose(f);
		return -1;
	}
	fclose(f);
	buf[strcspn(buf, "\r\n")] = '\0';
	return 0;
}

/* Say which step failed and what the server last said, if anything. */
static int
fail(mailimap *imap, const char *what, int r)
{
	const char *text = NULL;
	if (imap != NULL && imap->imap_response != NULL)
		text = imap->imap_response;
	fprintf(stderr, "imapfloor: %s failed (libetpan error %d)%s%s\n", what, r, text ? ": " : "",
	        text ? text : "");
	return 1;
}

int
main(int argc, char **argv)
{
	char pass[1024];
	mailimap *imap = NULL;
	struct mailimap_set *set = NULL;
	struct mailimap_fetch_type *ft = NULL;
	clist *result = NULL;
	unsigned long long nmsg = 0, nbytes = 0;
	int r, rc = 1;

	if (argc != 6) {
		fprintf(stderr, "usage: imapfloor HOST PORT USER PASSFILE FOLDER\n");
		return 2;
	}
	long port = strtol(argv[2], NULL, 10);
	if (port <= 0 || port > 65535) {
		fprintf(stderr, "imapfloor: bad port %s\n", argv[2]);
		return 2;
	}
	if (read_pass(argv[4], pass, sizeof pass) != 0)
		return 1;

	imap = mailimap_new(0, NULL);
	if (imap == NULL) {
		fprintf(stderr, "imapfloor: out of memory\n");
		return 1;
	}
	r = mailimap_socket_connect(imap, argv[1], (uint16_t)port);
	if (r != MAILIMAP_NO_ERROR_AUTHENTICATED && r != MAILIMAP_NO_ERROR_NON_AUTHENTICATED) {
		rc = fail(imap, "connect", r);
		goto out;
	}
	if ((r = mailimap_login(imap, argv[3], pass)) != MAILIMAP_NO_ERROR) {
		rc = fail(imap, "LOGIN", r);
		goto out;
	}
	if ((r = mailimap_select(imap, argv[5])) != MAILIMAP_NO_ERROR) {
		rc = fail(imap, "SELECT", r);
		goto out;
	}

	/* "1:*": interval 1 to 0, where 0 stands for "*" in libetpan. */
	set = mailimap_set_new_interval(1, 0);
	ft = mailimap_fetch_type_new_fetch_att_list_empty();
	if (set == NULL || ft == NULL ||
	    mailimap_fetch_type_new_fetch_att_list_add(ft, mailimap_fetch_att_new_uid()) != MAILIMAP_NO_ERROR ||
	    mailimap_fetch_type_new_fetch_att_list_add(
	        ft, mailimap_fetch_att_new_body_peek_section(mailimap_section_new(NULL))) != MAILIMAP_NO_ERROR) {
		fprintf(stderr, "imapfloor: out of memory\n");
		goto out;
	}
	if ((r = mailimap_uid_fetch(imap, set, ft, &result)) != MAILIMAP_NO_ERROR) {
		result = NULL;
		rc = fail(imap, "UID FETCH 1:* (BODY.PEEK[])", r);
		goto out;
	}

	/* Count what came back: one FETCH response per message, its body in
	 * the BODY[] section. */
	for (clistiter *it = clist_begin(result); it != NULL; it = clist_next(it)) {
		struct mailimap_msg_att *ma = clist_content(it);
		for (clistiter *ai = clist_begin(ma->att_list); ai != NULL; ai = clist_next(ai)) {
			struct mailimap_msg_att_item *item = clist_content(ai);
			if (item->att_type != MAILIMAP_MSG_ATT_ITEM_STATIC)
				continue;
			struct mailimap_msg_att_static *st = item->att_data.att_static;
			if (st->att_type == MAILIMAP_MSG_ATT_BODY_SECTION && st->att_data.att_body_section != NULL) {
				nmsg++;
				nbytes += st->att_data.att_body_section->sec_length;
			}
		}
	}
	printf("%llu %llu\n", nmsg, nbytes);
	rc = 0;
	(void)mailimap_logout(imap);

out:
	if (result != NULL)
		mailimap_fetch_list_free(result);
	if (ft != NULL)
		mailimap_fetch_type_free(ft);
	if (set != NULL)
		mailimap_set_free(set);
	mailimap_free(imap);
	return rc;
}
