"""The server people write by hand: FastAPI + uvicorn calling `model.predict` per request.

Run by the serving benchmark in its own process, as the baseline tfopt-serve is
compared to. It answers TF Serving's REST predict URL in the row format, so
the benchmark's REST client sends both servers the same bytes:

    python -m benchmarks._fastapi_server --model=model.keras --name=float --port=8080
"""

import argparse


import numpy as np
import tf_keras as keras
import uvicorn
from fastapi import FastAPI
from fastapi import Body


def make_app(model, name):
    app = FastAPI()

    @app.get("/healthz")
    def healthz():
        return {"ok": True}

    # A plain `def` route: FastAPI runs it in its thread pool, as most hand-written
    # servers do; each request is one `model.predict` call.
    @app.post(f"/v1/models/{name}:predict")
    def predict(body: dict = Body(...)):
        x = np.asarray(body["instances"], dtype=np.float32)
        return {"predictions": model.predict(x, verbose=0).tolist()}

    return app


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="A .keras file.")
    parser.add_argument("--name", required=True, help="The model name in the URL.")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    model = keras.models.load_model(args.model, compile=False)
    uvicorn.run(make_app(model, args.name), host="127.0.0.1", port=args.port,
                log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
