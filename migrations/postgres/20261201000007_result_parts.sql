-- Results of several files (#16): each page image and a thumbnail, as JSON
-- ({"files": [{page, key, filename, content_type, size, width, height}], "thumbnail": {…}});
-- NULL for a result of one file.
ALTER TABLE offload_jobs ADD COLUMN result_parts TEXT;
