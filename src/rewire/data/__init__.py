"""Episode datasets: the Minari layout in memory, D4RL/Minari-style HDF5 and NPZ on disk."""

from rewire.data.episodes import (
    DatasetError,
    Episode,
    EpisodeDataset,
    from_arrays,
    load_dataset,
    mc_returns,
    save_dataset,
)

__all__ = [
    "DatasetError",
    "Episode",
    "EpisodeDataset",
    "from_arrays",
    "load_dataset",
    "mc_returns",
    "save_dataset",
]
