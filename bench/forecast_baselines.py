#!/usr/bin/python3
"""Baselines of bench/forecast.ts: Debian's XGBoost 1.7.4 (python3-xgboost) and
scikit-learn's HistGradientBoostingRegressor (python3-sklearn).

  forecast_baselines.py make DIR ROWS SEED   make_friedman1 (noise 1), 5% missing in x3,
                                             as DIR/x.f32 (row-major) and DIR/y.f64
  forecast_baselines.py xgb|hgb DIR TRAIN_ROWS DEPTH ROUNDS ETA LAMBDA MAX_BIN
                                             train on the first TRAIN_ROWS rows (both
                                             given 2 threads), print JSON: seconds to
                                             train, RMSE on the remaining (later) rows
"""
import json, os, sys, time
import numpy as np

def load(d):
    y = np.fromfile(os.path.join(d, 'y.f64'), dtype=np.float64)
    x = np.fromfile(os.path.join(d, 'x.f32'), dtype=np.float32).reshape(len(y), -1)
    return x, y

def main():
    cmd, d = sys.argv[1], sys.argv[2]
    if cmd == 'make':
        from sklearn.datasets import make_friedman1
        rows, seed = int(sys.argv[3]), int(sys.argv[4])
        x, y = make_friedman1(n_samples=rows, n_features=10, noise=1.0, random_state=seed)
        x = x.astype(np.float32)
        x[np.random.RandomState(seed + 1).rand(rows) < 0.05, 3] = np.nan
        os.makedirs(d, exist_ok=True)
        x.tofile(os.path.join(d, 'x.f32'))
        y.astype(np.float64).tofile(os.path.join(d, 'y.f64'))
        return
    n_train, depth, rounds, eta, lam, max_bin = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]), float(sys.argv[7]), int(sys.argv[8])
    x, y = load(d)
    xt, yt, xs, ys = x[:n_train], y[:n_train], x[n_train:], y[n_train:]
    if cmd == 'xgb':
        import xgboost as xgb
        t0 = time.perf_counter()
        dm = xgb.DMatrix(xt, label=yt, nthread=2)
        b = xgb.train(dict(tree_method='hist', max_depth=depth, eta=eta, reg_lambda=lam, max_bin=max_bin, gamma=0, min_child_weight=1,
                           base_score=float(yt.mean()), nthread=2, objective='reg:squarederror'), dm, rounds)
        secs = time.perf_counter() - t0
        pred = b.predict(xgb.DMatrix(xs, nthread=2))
        version = xgb.__version__
    else:
        from sklearn.ensemble import HistGradientBoostingRegressor
        import sklearn
        m = HistGradientBoostingRegressor(max_iter=rounds, max_depth=depth, learning_rate=eta, l2_regularization=lam,
                                          max_leaf_nodes=None, min_samples_leaf=1, max_bins=min(max_bin, 255), early_stopping=False)
        t0 = time.perf_counter()
        m.fit(xt, yt)
        secs = time.perf_counter() - t0
        pred = m.predict(xs)
        version = sklearn.__version__
    print(json.dumps({'seconds': secs, 'rmse': float(np.sqrt(np.mean((pred - ys) ** 2))), 'version': version}))

main()
