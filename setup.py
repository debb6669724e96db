from setuptools import find_packages, setup

setup(
    name="landscape",
    version="0.1.0",
    description="Loss-landscape maps of neural networks (Li et al. 2018) computed with MPI and parallel HDF5",
    package_dir={"": "lib"},
    packages=find_packages("lib"),
    package_data={"landscape": ["plot/page.js"]},
    python_requires=">=3.9",
    install_requires=["torch", "torchvision", "numpy", "h5py", "matplotlib", "scipy", "plotly"],
    extras_require={"mpi": ["mpi4py"], "test": ["pytest", "scipy"]},
    entry_points={
        "console_scripts": [
            "landscape-surface=landscape.cli.surface:main",
            "landscape-hessian=landscape.cli.hessian:main",
            "landscape-trajectory=landscape.cli.trajectory:main",
            "landscape-train=landscape.cli.train:main",
            "landscape-plot=landscape.render:main",
        ]
    },
)
