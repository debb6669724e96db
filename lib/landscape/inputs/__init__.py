"""The user's and the zoo's objects: models, checkpoints, data sets, checkpoint series, and the user's
data and loss checked and hashed. May import space, curvature and the shared leaves."""
