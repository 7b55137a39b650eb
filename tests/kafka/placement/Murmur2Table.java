import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.util.HexFormat;
import org.apache.kafka.common.utils.Utils;

// For each hex key on stdin: the partition the Java client's key hashing
// chooses (toPositive(murmur2(key)) % n) for 2, 3, 5, 7, 12, 16 and 100 partitions.
public class Murmur2Table {
    public static void main(String[] args) throws Exception {
        int[] counts = {2, 3, 5, 7, 12, 16, 100};
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        String line;
        while ((line = in.readLine()) != null) {
            byte[] key = HexFormat.of().parseHex(line.trim());
            StringBuilder out = new StringBuilder(line.trim());
            for (int n : counts) {
                out.append(' ').append(Utils.toPositive(Utils.murmur2(key)) % n);
            }
            System.out.println(out);
        }
    }
}
