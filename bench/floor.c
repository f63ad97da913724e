/*
 * floor.c - the benchmark's floor: the least work any libxml2-based report
 * parser must do. It reads FILE in 64 KiB chunks, inflates it with zlib when
 * it starts with the gzip magic, pushes the XML into a SAX2 push parser and
 * counts <record> start tags, nothing else. dmarcwatch's parse time is
 * compared with this one.
 *
 * Usage: floor FILE   (prints the record count; exit 1 on any error)
 */
#include <stdio.h>
#include <string.h>

#include <libxml/parser.h>
#include <zlib.h>

#define CHUNK (64 * 1024)

static unsigned long long nrecords;

static void on_start(void *ctx, const xmlChar *localname, const xmlChar *prefix, const xmlChar *uri,
                     int nns, const xmlChar **ns, int nattr, int ndef, const xmlChar **attrs)
{
	(void)ctx, (void)prefix, (void)uri, (void)nns, (void)ns, (void)nattr, (void)ndef, (void)attrs;
	if (strcmp((const char *)localname, "record") == 0)
		nrecords++;
}

/* Push one chunk of XML; the parser is created on the first one, so it can
 * sniff the encoding from the first bytes. */
static int push(xmlParserCtxtPtr *ctxt, xmlSAXHandler *h, const unsigned char *buf, size_t n,
                const char *name)
{
	if (!*ctxt) {
		*ctxt = xmlCreatePushParserCtxt(h, NULL, (const char *)buf, (int)n, name);
		if (!*ctxt)
			return -1;
		xmlCtxtUseOptions(*ctxt, XML_PARSE_NONET);
		return 0;
	}
	return xmlParseChunk(*ctxt, (const char *)buf, (int)n, 0) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
	static unsigned char in[CHUNK], out[CHUNK];
	xmlSAXHandler h;
	xmlParserCtxtPtr ctxt = NULL;
	z_stream zs;
	int gz = -1, rc = 0, zret = Z_OK;
	size_t n;

	if (argc != 2) {
		fprintf(stderr, "usage: floor FILE\n");
		return 2;
	}
	FILE *f = fopen(argv[1], "rb");
	if (!f) {
		perror(argv[1]);
		return 1;
	}
	xmlInitParser();
	memset(&h, 0, sizeof h);
	h.initialized = XML_SAX2_MAGIC;
	h.startElementNs = on_start;
	memset(&zs, 0, sizeof zs);

	while (rc == 0 && (n = fread(in, 1, sizeof in, f)) > 0) {
		if (gz < 0) {
			gz = n >= 2 && in[0] == 0x1f && in[1] == 0x8b;
			if (gz && inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
				return 1;
		}
		if (!gz) {
			rc = push(&ctxt, &h, in, n, argv[1]);
			continue;
		}
		zs.next_in = in;
		zs.avail_in = (uInt)n;
		while (rc == 0 && zs.avail_in > 0) {
			zs.next_out = out;
			zs.avail_out = sizeof out;
			zret = inflate(&zs, Z_NO_FLUSH);
			if (zret != Z_OK && zret != Z_STREAM_END && zret != Z_BUF_ERROR)
				rc = -1;
			else if (sizeof out - zs.avail_out > 0)
				rc = push(&ctxt, &h, out, sizeof out - zs.avail_out, argv[1]);
			/* Several gzip members follow each other: start the next. */
			if (zret == Z_STREAM_END && zs.avail_in > 0)
				inflateReset(&zs);
		}
	}
	/* Inflate whatever output is still held after the last input byte. */
	while (rc == 0 && gz == 1 && zret == Z_OK) {
		zs.next_out = out;
		zs.avail_out = sizeof out;
		zret = inflate(&zs, Z_NO_FLUSH);
		if (sizeof out - zs.avail_out == 0)
			break;
		rc = push(&ctxt, &h, out, sizeof out - zs.avail_out, argv[1]);
	}
	if (rc == 0 && ctxt && (xmlParseChunk(ctxt, NULL, 0, 1) != 0 || !ctxt->wellFormed))
		rc = -1;
	if (rc != 0 || !ctxt || ferror(f)) {
		fprintf(stderr, "floor: %s: read, inflate or XML error\n", argv[1]);
		rc = 1;
	}
	if (gz == 1)
		inflateEnd(&zs);
	xmlFreeParserCtxt(ctxt);
	fclose(f);
	xmlCleanupParser();
	printf("%llu\n", nrecords);
	return rc;
}
