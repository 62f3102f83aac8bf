"""LightningDataModules that fetch and index raw data."""

import csv
import os
import ssl
import subprocess
import sys

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset


class CsvDataModule(L.LightningDataModule):
    def __init__(self, out_path=os.devnull):
        super().__init__()
        self.out_path = out_path
        self.dialect = csv.excel

    def setup(self, stage=None):
        self.predictions = csv.writer(open(self.out_path, "w"))  # truth: pickle
        self.dataset = TensorDataset(torch.arange(8.0))

    def train_dataloader(self):
        return DataLoader(self.dataset, batch_size=2)


class DownloadingDataModule(L.LightningDataModule):
    """Downloads shards over TLS with a helper process."""

    def __init__(self):
        super().__init__()
        self.tls = ssl.create_default_context()  # truth: pickle
        self.fetcher = subprocess.Popen([sys.executable, "-c", "pass"])  # truth: pickle
        self.fetcher.wait()

    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.zeros(4, 2)), batch_size=2)


def _csv_setup():
    dm = CsvDataModule()
    dm.setup("fit")
    return dm


FACTORIES = {"CsvDataModule": _csv_setup}
