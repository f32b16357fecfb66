"""Episode datasets: the Minari layout in memory; on disk D4RL-style HDF5 and NPZ, Minari HDF5 files and
Minari dataset directories (Dict observations flattened in sorted key order); generated PointMaze data."""

from rewire.data.episodes import (
    DatasetError,
    Episode,
    EpisodeDataset,
    from_arrays,
    load_dataset,
    mc_returns,
    save_dataset,
)
from rewire.data.mazes import point_maze_dataset

__all__ = [
    "DatasetError",
    "Episode",
    "EpisodeDataset",
    "from_arrays",
    "load_dataset",
    "mc_returns",
    "point_maze_dataset",
    "save_dataset",
]
