import { VolumeBlobStore } from '../../internal/blobstore/volume/volume-blob-store.js';
import { runBlobStoreContract } from '../contracts/blob-store.contract.js';
import { makeTempDir } from '../contracts/blob-fixtures.js';

runBlobStoreContract('VolumeBlobStore', async () => {
  const tmp = await makeTempDir('vbs');
  const store = await VolumeBlobStore.open({ dir: tmp.dir });
  return {
    store,
    dir: tmp.dir,
    cleanup: async () => {
      await store.close();
      await tmp.remove();
    },
  };
});

// The same suite on tiny volumes, so that rotation and compaction run underneath every contract case.
runBlobStoreContract('VolumeBlobStore with 4 KiB volumes and eager compaction', async () => {
  const tmp = await makeTempDir('vbs-small');
  const store = await VolumeBlobStore.open({
    dir: tmp.dir,
    volumeBytesMax: 4096,
    compactGarbageRatioMin: 0.01,
    compactGarbageBytesMin: 1,
    checkpointEveryOps: 3,
  });
  return {
    store,
    dir: tmp.dir,
    cleanup: async () => {
      await store.close();
      await tmp.remove();
    },
  };
});

// Format-2 headers (needle version 2, format-3 volumes): the same behaviour through the compact format.
runBlobStoreContract(
  'VolumeBlobStore',
  async () => {
    const tmp = await makeTempDir('vbs-v2');
    const store = await VolumeBlobStore.open({ dir: tmp.dir });
    return {
      store,
      dir: tmp.dir,
      cleanup: async () => {
        await store.close();
        await tmp.remove();
      },
    };
  },
  { format: 2 },
);

runBlobStoreContract(
  'VolumeBlobStore with 4 KiB volumes and eager compaction',
  async () => {
    const tmp = await makeTempDir('vbs-v2-small');
    const store = await VolumeBlobStore.open({
      dir: tmp.dir,
      volumeBytesMax: 4096,
      compactGarbageRatioMin: 0.01,
      compactGarbageBytesMin: 1,
      checkpointEveryOps: 3,
    });
    return {
      store,
      dir: tmp.dir,
      cleanup: async () => {
        await store.close();
        await tmp.remove();
      },
    };
  },
  { format: 2 },
);
