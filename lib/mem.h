/* Memory for the pool: mmap-backed, so the wrappers never call malloc (they
 * may run in a signal handler or inside malloc's own lock).  Records and
 * buckets come from fixed-size free lists and are never unmapped: type-stable
 * memory that a lock-free reader may still look at. */
#ifndef POOLSHIM_MEM_H
#define POOLSHIM_MEM_H

#include <stddef.h>

struct ps_slab {
	size_t size;      /* object size */
	void *free;       /* singly linked through each object's first word, which
			   * the object type reserves for it (ps_conn.slab_link) */
	size_t allocated; /* objects handed out minus returned */
};

#define PS_SLAB_INIT(type) { sizeof(type) < sizeof(void *) ? sizeof(void *) : sizeof(type), NULL, 0 }

/* Zeroed object or NULL (ENOMEM).  Caller serialises (the pool lock). */
void *ps_slab_alloc(struct ps_slab *s);
void ps_slab_free(struct ps_slab *s, void *obj);
/* The same without zeroing (buffers written before they are read). */
void *ps_slab_alloc_dirty(struct ps_slab *s);

/* Variable-size zeroed blocks (uthash's bucket arrays). */
void *ps_mem_alloc(size_t size);
void ps_mem_free(void *p, size_t size);

#endif
