# headswitch serving image: the stock TensorFlow Serving image with one exported headswitch model
# and its batching and monitoring configs baked in.
#
#   headswitch export example-models/*.keras --out models/headswitch
#   docker build -t headswitch-serving:1 .
#   docker run --rm -p 8500:8500 -p 8501:8501 headswitch-serving:1
#   curl -s localhost:8501/v1/models/headswitch
#
# Build arguments:
#   TF_SERVING_TAG  tensorflow/serving tag. It must be the TensorFlow version pinned in
#                   pyproject.toml (the `tf` extra): a SavedModel from a newer TensorFlow may use
#                   ops an older server does not know. GPU: --build-arg TF_SERVING_TAG=2.19.1-gpu
#   MODEL_DIR       the export's model base folder, holding numbered versions (default: the
#                   exporter's default --out, models/headswitch). Every version in it is copied;
#                   the server loads the newest. Temporary export folders are excluded by
#                   .dockerignore (and ignored by the server anyway: only integer names load).
#
# Vertex AI custom container: this image works unchanged.
#   container port      8501 (REST; Vertex sets AIP_HTTP_PORT to the declared port)
#   health route        /v1/models/headswitch/metadata (200 only while a version is available)
#   predict route       /v1/models/headswitch:predict ({"instances": [...]} in, "predictions" out)
#   model               without command/args the baked model is served; to serve the model that
#                       Vertex copied from the Model's artifact_uri instead, override the command
#                       and arguments (Vertex expands $(AIP_STORAGE_URI); TF Serving reads gs://):
#                         command: tensorflow_model_server
#                         args:    --port=8500 --rest_api_port=8501 --model_name=headswitch
#                                  --model_base_path=$(AIP_STORAGE_URI) + the flags of CMD below
#                       `headswitch deploy vertex` does exactly this.
# The stock entrypoint runs
#   tensorflow_model_server --port=8500 --rest_api_port=8501 --model_name=$MODEL_NAME
#       --model_base_path=$MODEL_BASE_PATH/$MODEL_NAME "$@"
# so CMD (below) only adds flags, and Kubernetes can point the server at gs://BUCKET/models by
# setting MODEL_BASE_PATH (k8s/overlays/gcs).

ARG TF_SERVING_TAG=2.19.1
FROM tensorflow/serving:${TF_SERVING_TAG}

ARG MODEL_DIR=models/headswitch

LABEL org.opencontainers.image.title="headswitch-serving" \
      org.opencontainers.image.description="TensorFlow Serving with a headswitch task-switching SavedModel" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV MODEL_NAME=headswitch \
    MODEL_BASE_PATH=/models

# Owned by the serving user, so they stay readable whatever the umask they were written with.
COPY --chown=10001:10001 ${MODEL_DIR} /models/headswitch
COPY --chown=10001:10001 docker/batching_parameters.txt docker/monitoring.config /etc/headswitch/

# A numeric non-root user: Kubernetes can check runAsNonRoot against it without /etc/passwd.
USER 10001:10001

# 8500 gRPC (PredictionService, ModelService), 8501 REST (/v1/models/...) and Prometheus
# metrics (/monitoring/prometheus/metrics).
EXPOSE 8500 8501

# Arguments appended to the stock entrypoint's tensorflow_model_server command line.
# k8s/base/deployment.yaml and headswitch.deploy pass the same flags.
CMD ["--enable_batching=true", \
     "--batching_parameters_file=/etc/headswitch/batching_parameters.txt", \
     "--monitoring_config_file=/etc/headswitch/monitoring.config", \
     "--enable_model_warmup=true"]
