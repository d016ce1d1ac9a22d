// Command metrics-adapter stands in for custom-metrics-stackdriver-adapter in the local control plane.
//
// It is built on the library the real adapter is built on (sigs.k8s.io/custom-metrics-apiserver), so the
// aggregated API it serves (discovery, authentication delegation, external.metrics.k8s.io and
// custom.metrics.k8s.io) is the real one. Only the data source differs: instead of Google Cloud Monitoring it
// asks a local endpoint speaking the Monitoring API v3 projects.timeSeries.list shape (the local stack's
// monitoring stand-in). The metric naming is the real adapter's: an External metric
// "prometheus.googleapis.com|NAME|KIND" is the Monitoring metric type "prometheus.googleapis.com/NAME/KIND"
// (k8s-stackdriver, custom-metrics-stackdriver-adapter/README.md, "Export metrics ... to Stackdriver").
// Custom (object) metrics are not served: the Triton chart autoscales on an External metric only.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/component-base/logs"
	"k8s.io/klog/v2"
	"k8s.io/metrics/pkg/apis/custom_metrics"
	"k8s.io/metrics/pkg/apis/external_metrics"

	basecmd "sigs.k8s.io/custom-metrics-apiserver/pkg/cmd"
	"sigs.k8s.io/custom-metrics-apiserver/pkg/provider"
)

type monitoringProvider struct {
	endpoint string
	project  string
	client   *http.Client
}

type timeSeriesList struct {
	TimeSeries []struct {
		Metric struct {
			Type   string            `json:"type"`
			Labels map[string]string `json:"labels"`
		} `json:"metric"`
		Resource struct {
			Type   string            `json:"type"`
			Labels map[string]string `json:"labels"`
		} `json:"resource"`
		Points []struct {
			Interval struct {
				EndTime string `json:"endTime"`
			} `json:"interval"`
			Value struct {
				DoubleValue *float64 `json:"doubleValue"`
				Int64Value  *string  `json:"int64Value"`
			} `json:"value"`
		} `json:"points"`
	} `json:"timeSeries"`
}

func (p *monitoringProvider) GetExternalMetric(ctx context.Context, namespace string, metricSelector labels.Selector,
	info provider.ExternalMetricInfo) (*external_metrics.ExternalMetricValueList, error) {
	metricType := strings.ReplaceAll(info.Metric, "|", "/")
	now := time.Now().UTC()
	query := url.Values{}
	query.Set("filter", fmt.Sprintf("metric.type = %q", metricType))
	query.Set("interval.startTime", now.Add(-5*time.Minute).Format(time.RFC3339))
	query.Set("interval.endTime", now.Format(time.RFC3339))
	target := fmt.Sprintf("%s/v3/projects/%s/timeSeries?%s", p.endpoint, url.PathEscape(p.project), query.Encode())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("monitoring: %v", err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("monitoring answered %s", resp.Status))
	}
	var list timeSeriesList
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	items := []external_metrics.ExternalMetricValue{}
	for _, series := range list.TimeSeries {
		// The adapter's selector convention: keys resource.labels.NAME and metric.labels.NAME select on the
		// time series' monitored resource labels and metric labels (k8s-stackdriver adapter README).
		set := labels.Set{"resource.type": series.Resource.Type}
		for key, value := range series.Resource.Labels {
			set["resource.labels."+key] = value
		}
		for key, value := range series.Metric.Labels {
			set["metric.labels."+key] = value
		}
		if !metricSelector.Matches(set) || len(series.Points) == 0 {
			continue
		}
		// timeSeries.list returns the newest point first.
		point := series.Points[0]
		var quantity *resource.Quantity
		switch {
		case point.Value.DoubleValue != nil:
			quantity = resource.NewMilliQuantity(int64(*point.Value.DoubleValue*1000), resource.DecimalSI)
		case point.Value.Int64Value != nil:
			n, err := strconv.ParseInt(*point.Value.Int64Value, 10, 64)
			if err != nil {
				return nil, apierrors.NewInternalError(err)
			}
			quantity = resource.NewQuantity(n, resource.DecimalSI)
		default:
			continue
		}
		stamp, err := time.Parse(time.RFC3339, point.Interval.EndTime)
		if err != nil {
			stamp = now
		}
		items = append(items, external_metrics.ExternalMetricValue{
			MetricName: info.Metric, MetricLabels: series.Metric.Labels,
			Timestamp: metav1.NewTime(stamp), Value: *quantity,
		})
	}
	if len(items) == 0 {
		return nil, apierrors.NewNotFound(schema.GroupResource{Group: "external.metrics.k8s.io", Resource: info.Metric},
			"no time series of "+metricType)
	}
	return &external_metrics.ExternalMetricValueList{Items: items}, nil
}

func (p *monitoringProvider) ListAllExternalMetrics() []provider.ExternalMetricInfo {
	return nil
}

func (p *monitoringProvider) GetMetricByName(_ context.Context, name types.NamespacedName, info provider.CustomMetricInfo,
	_ labels.Selector) (*custom_metrics.MetricValue, error) {
	return nil, provider.NewMetricNotFoundForError(info.GroupResource, info.Metric, name.Name)
}

func (p *monitoringProvider) GetMetricBySelector(_ context.Context, _ string, _ labels.Selector,
	info provider.CustomMetricInfo, _ labels.Selector) (*custom_metrics.MetricValueList, error) {
	return nil, provider.NewMetricNotFoundError(info.GroupResource, info.Metric)
}

func (p *monitoringProvider) ListAllMetrics() []provider.CustomMetricInfo {
	return nil
}

func main() {
	logs.InitLogs()
	defer logs.FlushLogs()

	adapter := &basecmd.AdapterBase{Name: "metrics-adapter"}
	monitoring := &monitoringProvider{client: &http.Client{Timeout: 10 * time.Second}}
	adapter.Flags().StringVar(&monitoring.endpoint, "monitoring-endpoint", "",
		"base URL of a Cloud Monitoring API v3 endpoint (projects.timeSeries.list)")
	adapter.Flags().StringVar(&monitoring.project, "project", "", "Google Cloud project the time series belong to")
	logs.AddFlags(adapter.Flags())
	if err := adapter.Flags().Parse(os.Args); err != nil {
		klog.Fatalf("unable to parse flags: %v", err)
	}
	if monitoring.endpoint == "" || monitoring.project == "" {
		klog.Fatal("--monitoring-endpoint and --project are required")
	}
	adapter.WithCustomMetrics(monitoring)
	adapter.WithExternalMetrics(monitoring)
	if err := adapter.Run(context.Background()); err != nil {
		klog.Fatalf("unable to run the metrics adapter: %v", err)
	}
}
