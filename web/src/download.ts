/** Files for the person to download: one link per file (a blob URL with its file name). */

/** Replace the links in `list` by one per file of `files`. */
export function showDownloads(list: HTMLElement, files: ReadonlyMap<string, Uint8Array>): void {
  for (const a of Array.from(list.querySelectorAll('a'))) URL.revokeObjectURL(a.href);
  list.replaceChildren();
  for (const [name, bytes] of files) {
    const a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([bytes as Uint8Array<ArrayBuffer>], { type: name.endsWith('.json') ? 'application/json' : 'application/octet-stream' }));
    a.download = name;
    a.textContent = `${name} (${(bytes.length / 1024).toFixed(1)} KiB)`;
    a.dataset.file = name;
    const li = document.createElement('li');
    li.append(a);
    list.append(li);
  }
}
