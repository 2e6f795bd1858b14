/* Owns the slabs.  A chunk is carved into objects on first use; freed objects
 * go to the slab's free list and are reused, never unmapped. */
#include "mem.h"

#include <string.h>
#include <sys/mman.h>

#define CHUNK (64 * 1024)

void *ps_mem_alloc(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

void ps_mem_free(void *p, size_t size)
{
	if (p)
		munmap(p, size);
}

void *ps_slab_alloc_dirty(struct ps_slab *s)
{
	if (!s->free) {
		char *chunk = ps_mem_alloc(CHUNK);
		if (!chunk)
			return NULL;
		for (size_t off = 0; off + s->size <= CHUNK; off += s->size) {
			*(void **)(void *)(chunk + off) = s->free;
			s->free = chunk + off;
		}
	}
	void *obj = s->free;
	s->free = *(void **)obj;
	s->allocated++;
	return obj;
}

void *ps_slab_alloc(struct ps_slab *s)
{
	void *obj = ps_slab_alloc_dirty(s);
	if (obj)
		memset(obj, 0, s->size);
	return obj;
}

void ps_slab_free(struct ps_slab *s, void *obj)
{
	*(void **)obj = s->free;
	s->free = obj;
	s->allocated--;
}
