/* SPDX-License-Identifier: Apache-2.0 */
/* The WAL's on-disk encoding: segment headers, records, and the pure segment scanner. */
#ifndef ST_WAL_FORMAT_H
#define ST_WAL_FORMAT_H

#include <stddef.h>
#include <stdint.h>

/*
 * Everything here works on memory buffers only: no I/O, no allocation, no
 * global state, so the fuzzer (fuzz/fuzz_wal_record.c) can drive it with
 * arbitrary bytes. Bad input comes back as HD_ECORRUPT, never as an assert.
 * docs/disk-format.md describes the layout in prose; keep the two in step.
 */

#define ST_WAL_BLOCK 4096u           /* alignment and padding unit of every write */
#define ST_WAL_VERSION 1u            /* segment format version */
#define ST_WAL_SEG_MAGIC 0x574C5248u /* "HRLW" little-endian */
#define ST_WAL_REC_MAGIC 0x43455257u /* "WREC" little-endian */
#define ST_WAL_SEG_HDR_SIZE 48u      /* used bytes of the segment header block */
#define ST_WAL_REC_HDR_SIZE 32u      /* bytes before each record's payload */
#define ST_WAL_REC_BATCH_START 0x1u  /* flag: first record of a group commit */

/* A segment header, decoded. */
struct st__wal_seg_hdr {
    uint64_t index;     /* segment number, also in the file name */
    uint64_t first_lsn; /* LSN of the first record the segment holds */
    uint64_t size;      /* bytes the segment was preallocated to */
    uint32_t salt;      /* random; seeds every record CRC in this segment */
};

/* A record, decoded. `payload` points into the decoded buffer. */
struct st__wal_rec {
    uint64_t lsn;           /* the record's LSN */
    uint32_t len;           /* payload bytes */
    uint32_t flags;         /* ST_WAL_REC_* */
    const uint8_t *payload; /* len bytes */
};

static inline uint64_t st__wal_align_up(uint64_t n)
{
    return (n + ST_WAL_BLOCK - 1) & ~(uint64_t)(ST_WAL_BLOCK - 1);
}

/* Bytes a record with a payload of `len` bytes takes in a segment. */
static inline uint64_t st__wal_rec_size(uint64_t len)
{
    return ST_WAL_REC_HDR_SIZE + len;
}

/* Writes a whole ST_WAL_BLOCK-byte header block (zeros after the header). */
void st__wal_encode_seg_hdr(uint8_t *block, const struct st__wal_seg_hdr *h);

/* Decodes and checks a segment header from the first `len` bytes of a file.
 * Returns 0 or HD_ECORRUPT. */
int st__wal_decode_seg_hdr(const uint8_t *buf, size_t len,
                           struct st__wal_seg_hdr *out);

/* Encoding a record takes two steps, because the segment (hence the salt)
 * and the group commit it lands in are decided only when it is written:
 * _begin fills the fields known at append time (the payload must already
 * be in place after the header), _seal adds the flags and the header CRC. */
void st__wal_rec_begin(uint8_t *hdr, uint64_t lsn, uint32_t len,
                       uint32_t payload_crc);
void st__wal_rec_seal(uint8_t *hdr, uint32_t salt, uint32_t flags);

/* Decodes the record at the start of `buf` (of which `avail` bytes are
 * readable) with the segment's salt. Returns the record's size in bytes
 * (header + payload, > 0) or HD_ECORRUPT if the magic, a reserved field,
 * the length, or either CRC is wrong. Reads nothing beyond buf[avail). */
int st__wal_decode_record(const uint8_t *buf, size_t avail, uint32_t salt,
                          struct st__wal_rec *out);

/* True if n bytes at p are all zero. */
int st__wal_is_zero(const uint8_t *p, size_t n);

/* Why a segment scan stopped. */
enum st__wal_stop {
    ST__WAL_STOP_CLEAN,    /* only zeros after the last good record */
    ST__WAL_STOP_TORN,     /* non-zero bytes after it, but no later group commit */
    ST__WAL_STOP_CORRUPT,  /* a bad record with a valid group commit after it */
    ST__WAL_STOP_CALLBACK  /* the callback returned non-zero */
};

struct st__wal_scan {
    enum st__wal_stop stop; /* outcome */
    uint64_t next_lsn;      /* LSN after the last good record */
    size_t end;             /* offset just past the last good record: the cut */
    size_t dirty_end;       /* offset past the last non-zero byte at or after end */
    size_t later_off;       /* CORRUPT: offset of the valid group commit found */
    unsigned remnants;      /* blocks skipped as remnants of an earlier cut */
    int cb_rv;              /* CALLBACK: what the callback returned */
};

typedef int (*st__wal_rec_cb)(void *arg, const struct st__wal_rec *rec);

/* Scans the image of one segment, `len` bytes starting with its header
 * block, from offset ST_WAL_BLOCK on. Calls cb for each good record in LSN
 * order starting at first_lsn (cb may be NULL), then classifies what follows
 * the last good record. Pure: the caller decides what a stop means for the
 * last and for earlier segments. See wal.c "Recovery" for the rules. */
void st__wal_scan(const uint8_t *seg, size_t len, uint32_t salt,
                  uint64_t first_lsn, st__wal_rec_cb cb, void *arg,
                  struct st__wal_scan *out);

#endif
